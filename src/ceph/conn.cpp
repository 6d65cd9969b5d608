#include "ceph/conn.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/fs.hpp"
#include "core/netns.hpp"
#include "core/process.hpp"
#include "core/text.hpp"

namespace devemu::ceph {

using core::Errc;

core::Result<std::string> Conn::secret() const
{
    if (!secret_file.empty()) {
        DEVEMU_TRY(text, core::read_file(secret_file));
        auto key = std::string(core::trim(text));
        if (key.empty()) return core::fail(Errc::invalid_input, "the secret file is empty", secret_file, "put the cephx key of client." + user + " in it");
        return key;
    }
    if (keyring.empty()) return core::fail(Errc::invalid_input, "no keyring for client." + user, where, "add keyring = \"/etc/ceph/ceph.client." + user + ".keyring\"");
    DEVEMU_TRY(text, core::read_file(keyring));
    bool in_section = false;
    for (auto& raw : core::split(text, '\n')) {
        auto line = std::string(core::trim(raw));
        if (line.starts_with("[")) in_section = line == "[client." + user + "]";
        else if (in_section && line.starts_with("key")) {
            if (auto eq = line.find('='); eq != std::string::npos) return std::string(core::trim(line.substr(eq + 1)));
        }
    }
    // A keyring that is just the bare key (what `ceph auth print-key` writes) is a secret file.
    auto bare = std::string(core::trim(text));
    if (!bare.empty() && bare.find_first_of("[ \t\n") == std::string::npos) return bare;
    return core::fail(Errc::invalid_input, "no key for client." + user, keyring, "check the keyring's [client." + user + "] section");
}

std::vector<std::string> Conn::cli_args(int timeout_s) const
{
    std::vector<std::string> a;
    a.insert(a.end(), {"-c", conf.empty() ? "/dev/null" : conf});
    if (!mon_host.empty()) a.insert(a.end(), {"-m", mon_host});
    a.insert(a.end(), {"--id", user});
    if (!secret_file.empty()) a.insert(a.end(), {"--keyfile", secret_file});
    else if (!keyring.empty()) a.insert(a.end(), {"--keyring", keyring});
    const auto t = std::to_string(timeout_s);
    a.insert(a.end(), {"--client_mount_timeout", t, "--rados_mon_op_timeout", t, "--rados_osd_op_timeout", std::to_string(3 * timeout_s)});
    return a;
}

Conn conn_of(const profile::Backstore& b)
{
    Conn c;
    c.mon_host = b.mon_host;
    c.user = b.user.empty() ? "admin" : b.user;
    c.where = b.loc.str();
    // A keyring path whose file holds only the key is a secret file; Conn::secret() handles both, the CLI
    // needs to be told which.
    auto text = core::read_file(b.keyring);
    if (text && text->find('[') == std::string::npos) c.secret_file = b.keyring;
    else c.keyring = b.keyring;
    return c;
}

namespace {

// The cluster's reason in the user's terms. `text` is the tool's stderr (never echoed whole: it can be long).
core::Error explain(const Conn& c, const std::string& tool, const std::vector<std::string>& args, const std::string& text, bool timed_out)
{
    auto has = [&](const char* s) { return text.find(s) != std::string::npos; };
    const std::string mons = c.mon_host.empty() ? "the monitors in " + c.conf : c.mon_host;
    if (has("Malformed input") || has("keyring not found") || has("failed to load"))
        return {Errc::invalid_input, fmt::format("the key of client.{} could not be read from {}", c.user, c.secret_file.empty() ? c.keyring : c.secret_file),
                c.where, "check the keyring file ([client.USER] and key = BASE64)"};
    if (timed_out || has("timed out"))
        return {Errc::missing, fmt::format("cannot reach the Ceph monitors at {}", mons), c.where,
                "check mon_host and that the cluster is up (for the local cluster: devemu ceph status)"};
    // A monitor that answers and refuses: rbd says only "couldn't connect", at once; ceph says "permission denied".
    if (has("handle_auth_bad_method") || has("ermission denied") || has("errno 13") || has("(1) Operation not permitted") || has("(13)") ||
        has("couldn't connect") || has("error connecting"))
        return {Errc::invalid_input, fmt::format("the cluster at {} refused the key of client.{}", mons, c.user), c.where,
                "check keyring (or the secret file) and user"};
    if (auto p = text.find("error opening pool '"); p != std::string::npos) {
        auto name = text.substr(p + 20, text.find('\'', p + 20) - p - 20);
        return {Errc::missing, fmt::format("pool '{}' does not exist on the cluster at {}", name, mons), c.where,
                "create it (ceph osd pool create " + name + "; rbd pool init " + name + ") or fix pool"};
    }
    // The line that says what went wrong: rbd's "rbd: error …" comes before its advice lines.
    std::string last;
    for (auto& line : core::split(text, '\n'))
        if (auto t = std::string(core::trim(line)); !t.empty() && (last.empty() || (t.find("error") != std::string::npos && last.find("error") == std::string::npos)))
            last = t;
    return {Errc::kernel, fmt::format("`{} {}` failed: {}", tool, args.empty() ? "" : args.front(), last), c.where, "run it by hand with -c/-m to see more"};
}

}  // namespace

core::Result<std::string> cli(const Conn& c, const std::string& tool, const std::vector<std::string>& args, int timeout_s)
{
    std::vector<std::string> argv = {tool};
    auto common = c.cli_args(timeout_s);
    argv.insert(argv.end(), common.begin(), common.end());
    if (tool == "ceph") argv.insert(argv.end(), {"--connect-timeout", std::to_string(timeout_s)});
    argv.insert(argv.end(), args.begin(), args.end());
    spdlog::debug("ceph: {} {}", tool, core::join(args, " "));
    // The tools' own waits are bounded by the options above; this deadline only catches a wedged tool.
    DEVEMU_TRY(r, core::run(argv, std::chrono::seconds(4 * timeout_s + 20), {}, c.netns));
    if (r.exit_code != 0 || r.timed_out) return std::unexpected(explain(c, tool, args, r.err + r.out, r.timed_out));
    return r.out;
}

}  // namespace devemu::ceph
