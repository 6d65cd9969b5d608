#include "lio/access.hpp"

#include <fmt/format.h>

namespace devemu::lio {

using nlohmann::json;

json access_info(const json& rec, const std::string& portal_override, bool secrets)
{
    json info = rec.value("info", json::object());
    if (info.value("fabric", "") != "iscsi") return info;
    const std::string portal = portal_override.empty() ? info.value("portal", "") : portal_override;
    std::string host = portal;
    if (host.starts_with("0.0.0.0:")) host = "127.0.0.1" + host.substr(7);
    const std::string iqn = info["wwn"];
    json urls = json::array();
    std::string user, secret;
    if (!info["acls"].empty()) {
        const std::string ini = info["acls"][0]["initiator"];
        const json chap = rec.value("chap", json::object()).value(ini, json::object());
        user = chap.value("user", "");
        secret = chap.value("secret", "");
        info["initiator"] = ini;
    }
    // Mutual CHAP: libiscsi takes the target's credentials as URL parameters.
    std::string mutual;
    if (!info["acls"].empty()) {
        const json chap = rec.value("chap", json::object()).value(info["acls"][0].value("initiator", ""), json::object());
        if (chap.contains("mutual_user"))
            mutual = fmt::format("?target_user={}&target_password={}", chap["mutual_user"].get<std::string>(),
                                 secrets ? chap.value("mutual_secret", "") : "SECRET");
    }
    for (auto& l : info["luns"]) {
        std::string cred = user.empty() ? "" : user + "%" + (secrets ? secret : "SECRET") + "@";
        urls.push_back(fmt::format("iscsi://{}{}/{}/{}{}", cred, host, iqn, l["lun"].get<int>(), mutual));
    }
    info["portal"] = host;
    info["urls"] = urls;
    info["iscsiadm"] = json::array({fmt::format("iscsiadm -m discovery -t sendtargets -p {}", host),
                                    fmt::format("iscsiadm -m node -T {} -p {} --login", iqn, host)});
    if (!user.empty() && secrets) info["chap_secret"] = secret;
    return info;
}

std::string with_portal(const std::string& url, const std::string& portal)
{
    if (portal.empty()) return url;
    const auto at = url.find('@');
    const auto host_start = at == std::string::npos ? url.find("//") + 2 : at + 1;
    return url.substr(0, host_start) + portal + url.substr(url.find('/', host_start));
}

std::string forward_key(const std::string& target, std::size_t k) { return k == 0 ? target : fmt::format("{}/{}", target, k + 1); }

}  // namespace devemu::lio
