#pragma once
// Every change devemu makes to kernel state goes through one Transaction. Each step journals its undo record
// (durably) before it acts; rollback() replays the journal in reverse. A committed transaction keeps its journal:
// it is the exact list of what `down` must remove.
#include <filesystem>
#include <string_view>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "core/journal.hpp"

namespace devemu::core {

enum class Undo { none, restore };

class Transaction {
public:
    explicit Transaction(fs::path journal_file);
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    Transaction(Transaction&&) = default;
    ~Transaction();   // an uncommitted transaction rolls back

    // Creates a directory we then own. An existing one is refused: devemu never adopts what it did not make.
    [[nodiscard]] Status mkdir(const fs::path& dir);
    [[nodiscard]] Status symlink(const fs::path& target, const fs::path& link);
    // Writes an attribute; with Undo::restore the old value is journaled and written back on undo.
    [[nodiscard]] Status write(const fs::path& attr, std::string_view value, Undo undo = Undo::none);
    // For steps done by other code (spawn, zram hot_add, mount): journal the undo record, then act.
    [[nodiscard]] Status record(const UndoRecord& r);

    void commit() { committed_ = true; }
    [[nodiscard]] Status rollback();
    [[nodiscard]] std::size_t steps() const { return steps_; }
    [[nodiscard]] const fs::path& journal() const { return journal_; }

private:
    [[nodiscard]] Status journal_step(const UndoRecord& r);

    fs::path journal_;
    UniqueFd journal_fd_;   // opened at the first step, O_APPEND
    std::size_t steps_ = 0;
    std::size_t base_records_ = 0;
    bool committed_ = false;
};

}  // namespace devemu::core
