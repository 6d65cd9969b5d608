#include "core/nodes.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include <map>
#include <set>

#include "core/fs.hpp"

namespace devemu::core {

namespace {
constexpr const char* kinds[] = {"ensure", "dir", "link", "attr"};

bool under(const std::string& path, const std::string& dir) { return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/'; }

// Is the live node what `n` says? Sets `live` to what is there, for the plan.
bool live_matches(const Node& n, const fs::path& root, std::string& live)
{
    std::error_code ec;
    const auto p = root / n.path;
    switch (n.kind) {
    case NodeKind::ensure:
    case NodeKind::dir:
        live = fs::is_directory(fs::symlink_status(p, ec)) ? "present" : "absent";
        return live == "present";
    case NodeKind::link: {
        if (!fs::is_symlink(fs::symlink_status(p, ec))) { live = "absent"; return false; }
        auto t = fs::read_symlink(p, ec);
        auto want = fs::path(n.value);
        live = t.string();
        const auto got = p.parent_path() / t, wanted = want.is_absolute() ? want : root / want;
        // configfs writes links relative and has no symlinked directories: most compare equal without a syscall.
        return got.lexically_normal() == wanted.lexically_normal() || fs::weakly_canonical(got, ec) == fs::weakly_canonical(wanted, ec);
    }
    case NodeKind::attr: {
        if (!n.verify) { live = "(write-only)"; return ::access(p.c_str(), F_OK) == 0; }
        auto v = read_attr(p);
        live = v ? *v : "absent";
        return v && *v == n.value;
    }
    }
    return false;
}
}  // namespace

void to_json(nlohmann::json& j, const Node& n)
{
    j = {{"kind", kinds[static_cast<int>(n.kind)]}, {"path", n.path}, {"value", n.value}};
    if (!n.verify) j["verify"] = false;
    if (!n.undo.empty()) j["undo"] = n.undo;
}

void from_json(const nlohmann::json& j, Node& n)
{
    const std::string k = j.at("kind");
    for (int i = 0; i < 4; ++i)
        if (k == kinds[i]) n.kind = static_cast<NodeKind>(i);
    n.path = j.at("path");
    n.value = j.value("value", "");
    n.verify = j.value("verify", true);
    n.undo = j.value("undo", "");
}

std::vector<Node> recorded_nodes(const nlohmann::json& record)
{
    return record.contains("nodes") ? record["nodes"].get<std::vector<Node>>() : std::vector<Node>{};
}

std::vector<Step> diff(const std::vector<Node>& recorded, const std::vector<Node>& desired, const fs::path& root)
{
    std::map<std::string, const Node*> want, had;
    for (auto& n : desired) want[n.path] = &n;
    for (auto& n : recorded) had[n.path] = &n;

    std::vector<Step> steps;
    auto unwanted = [&](const Node& n) {
        auto w = want.find(n.path);
        return w == want.end() || w->second->kind != n.kind || (n.kind != NodeKind::attr && w->second->value != n.value);
    };
    // Directories that go (no longer wanted, or their identity changed) take along everything recorded below them
    // and every link that points into them (LIO refuses to remove a backstore a LUN still links to). Known before
    // the removals are listed, since those run children first.
    std::set<std::string> removed_dirs, removed;
    for (auto& n : recorded)
        if (n.kind == NodeKind::dir && unwanted(n)) removed_dirs.insert(n.path);
    auto goes = [&](const Node& n) {
        if (n.kind == NodeKind::ensure) return false;
        if (unwanted(n)) return true;
        for (auto& d : removed_dirs)
            if (under(n.path, d) || (n.kind == NodeKind::link && (n.value == d || under(n.value, d)))) return true;
        return false;
    };
    for (auto it = recorded.rbegin(); it != recorded.rend(); ++it) {
        if (!goes(*it)) continue;
        removed.insert(it->path);
        steps.push_back({Action::remove, *it, ""});
    }
    // What was removed above and is still wanted is made again, parents first.
    for (auto& n : desired) {
        std::string live;
        auto h = had.find(n.path);
        const bool recorded_here = h != had.end() && !removed.count(n.path);
        if (!recorded_here) {
            steps.push_back({Action::create, n, ""});
            continue;
        }
        if (n.kind == NodeKind::attr && h->second->value != n.value) {
            steps.push_back({Action::change, n, h->second->value});
            continue;
        }
        if (!live_matches(n, root, live)) steps.push_back({Action::repair, n, live});
    }
    return steps;
}

Status apply(Transaction& tx, const std::vector<Step>& plan, const fs::path& root)
{
    for (auto& s : plan) {
        const auto p = root / s.node.path;
        switch (s.action) {
        case Action::remove: {
            UndoRecord r;
            if (s.node.kind == NodeKind::attr) {
                if (s.node.undo.empty()) continue;
                r = {UndoOp::write, p.string(), s.node.undo};
            } else {
                r = {s.node.kind == NodeKind::dir ? UndoOp::rmdir : UndoOp::unlink, p.string()};
            }
            DEVEMU_CHECK(undo(r));
            break;
        }
        case Action::create:
        case Action::repair:
        case Action::change:
            switch (s.node.kind) {
            case NodeKind::ensure:
                if (::access(p.c_str(), F_OK) != 0 && ::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST)
                    return fail_errno("cannot create", p.string());
                break;
            case NodeKind::dir:
                DEVEMU_CHECK(tx.mkdir(p));
                break;
            case NodeKind::link: {
                fs::path target = s.node.value;
                DEVEMU_CHECK(tx.symlink(target.is_absolute() ? target : root / target, p));
                break;
            }
            case NodeKind::attr:
                if (!s.node.undo.empty()) DEVEMU_CHECK(tx.record({UndoOp::write, p.string(), s.node.undo}));
                DEVEMU_CHECK(tx.write(p, s.node.value));
                break;
            }
            break;
        }
    }
    return {};
}

std::vector<std::string> verify(const std::vector<Node>& desired, const fs::path& root)
{
    std::vector<std::string> out;
    for (auto& n : desired) {
        std::string live;
        if (!live_matches(n, root, live))
            out.push_back(fmt::format("{}: asked for {}, the kernel has {}", (root / n.path).string(),
                                      n.kind == NodeKind::attr || n.kind == NodeKind::link ? "'" + n.value + "'" : "a directory", live));
    }
    return out;
}

std::string describe(const Step& s)
{
    const char* verbs[] = {"create", "remove", "change", "repair"};
    std::string what = s.node.path;
    if (s.node.kind == NodeKind::link) what += " -> " + s.node.value;
    if (s.node.kind == NodeKind::attr) what += " = " + (s.node.path.ends_with("password") || s.node.path.ends_with("password_mutual") ? std::string("(secret)") : s.node.value);
    if (s.action == Action::change) what += " (was " + s.old + ")";
    if (s.action == Action::repair) what += " (found " + s.old + ")";
    return fmt::format("{:7} {}", verbs[static_cast<int>(s.action)], what);
}

}  // namespace devemu::core
