#include "vm/exec_frames.hpp"

#include "core/text.hpp"

namespace devemu::vm {

core::Status ExecFrames::feed(std::string_view bytes, const core::OutputSink& sink)
{
    buf_.append(bytes);
    std::size_t at = 0;
    while (!status_) {
        const auto nl = buf_.find('\n', at);
        if (nl == std::string::npos) break;
        const auto head = core::split(buf_.substr(at, nl - at), ' ');
        const auto n = head.size() == 3 ? core::parse_number(head[2]) : std::nullopt;
        if (!n || head[1].size() != 1 || std::string_view("soex").find(head[1][0]) == std::string_view::npos)
            return core::fail(core::Errc::kernel, "the VM's exec channel sent an unreadable frame", std::string(core::trim(buf_.substr(at, std::min<std::size_t>(nl - at, 80)))),
                              "see console.log in the unit's run directory");
        const char kind = head[1][0];
        const bool ours = head[0] == id_;
        if (kind == 's' || kind == 'x') {
            if (ours && kind == 's') started_ = true;
            if (ours && kind == 'x') status_ = static_cast<int>(*n);
            at = nl + 1;
            continue;
        }
        if (buf_.size() < nl + 1 + *n) break;   // the rest of its data is still on the way
        if (ours && sink) sink(kind == 'e', std::string_view(buf_).substr(nl + 1, *n));
        at = nl + 1 + *n;
    }
    buf_.erase(0, at);
    return {};
}

}  // namespace devemu::vm
