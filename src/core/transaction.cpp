#include "core/transaction.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <spdlog/spdlog.h>

#include "core/fs.hpp"

namespace devemu::core {

Transaction::~Transaction()
{
    if (committed_ || steps_ == 0) return;
    if (auto s = rollback(); !s) spdlog::error("rollback incomplete: {}", s.error().message());
}

// Fault injection for tests that crash a real `up` (VM tests): DEVEMU_CRASH_AFTER_STEP=N dies right after step N
// is journaled, before it acts, exactly where a power cut or kill -9 hurts most.
static long crash_after_step()
{
    static const long n = [] {
        const char* v = std::getenv("DEVEMU_CRASH_AFTER_STEP");
        return v && *v ? std::atol(v) : -1L;
    }();
    return n;
}

Status Transaction::journal_step(const UndoRecord& r)
{
    if (!journal_fd_) {
        journal_fd_.reset(::open(journal_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
        if (!journal_fd_) return fail_errno("cannot open journal", journal_.string());
    }
    const std::string line = r.to_line() + "\n";
    if (::write(journal_fd_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fdatasync(journal_fd_.get()) != 0)
        return fail_errno("cannot append to journal", journal_.string());
    if (testing::after_journal_hook) testing::after_journal_hook(steps_);
    if (static_cast<long>(steps_) == crash_after_step()) ::_exit(137);
    ++steps_;
    return {};
}

Status Transaction::mkdir(const fs::path& dir)
{
    if (::access(dir.c_str(), F_OK) == 0)
        return fail(Errc::busy, "already exists and was not created by this devemu unit", dir.string(),
                    "remove it, or pick another name");
    if (auto s = journal_step({UndoOp::rmdir, dir.string()}); !s) return s;
    if (::mkdir(dir.c_str(), 0755) != 0) return fail_errno("cannot create", dir.string());
    return {};
}

Status Transaction::symlink(const fs::path& target, const fs::path& link)
{
    if (auto s = journal_step({UndoOp::unlink, link.string()}); !s) return s;
    if (::symlink(target.c_str(), link.c_str()) != 0) return fail_errno("cannot link to " + target.string(), link.string());
    return {};
}

Status Transaction::write(const fs::path& attr, std::string_view value, Undo undo)
{
    if (undo == Undo::restore) {
        auto old = read_attr(attr);
        if (!old) return std::unexpected(old.error());
        if (auto s = journal_step({UndoOp::write, attr.string(), *old}); !s) return s;
    }
    return write_attr(attr, value);
}

Status Transaction::record(const UndoRecord& r) { return journal_step(r); }

Transaction::Transaction(fs::path journal_file) : journal_(std::move(journal_file))
{
    if (auto prior = load_journal(journal_)) base_records_ = prior->size();
}

Status Transaction::rollback()
{
    committed_ = true;   // whatever happens, do not replay twice
    journal_fd_.reset();
    if (base_records_ == 0) return replay_journal(journal_);
    // Undo only this transaction's steps; the unit's earlier, committed steps stay journaled.
    auto recs = load_journal(journal_);
    if (!recs) return std::unexpected(recs.error());
    std::optional<Error> first;
    for (size_t i = recs->size(); i > base_records_; --i)
        if (auto s = undo((*recs)[i - 1]); !s && !first) first = s.error();
    if (first) return std::unexpected(*first);
    std::string keep;
    for (size_t i = 0; i < base_records_; ++i) keep += (*recs)[i].to_line() + "\n";
    return write_file_atomic(journal_, keep, 0600);
}

}  // namespace devemu::core
