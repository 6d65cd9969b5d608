// tcp-segments: what segment size alone costs a TCP stream over loopback on this machine. A sender with TCP_NODELAY
// writes TOTAL bytes in writes of CHUNK bytes, each write a segment of its own (as LIO's iSCSI target sends a
// read's data: one sendpage per 4 KiB page, no MSG_MORE); a receiver reads 256 KiB at a time. Prints the stream's
// MiB/s and the TCP segments sent per MiB (/proc/net/snmp OutSegs: both directions, ACKs included). Run by
// tools/bench-tcp-segments in the VM.
//
//   tcp-segments CHUNK TOTAL [PORT]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

long long out_segments()
{
    std::ifstream f("/proc/net/snmp");
    std::string names, values;
    for (std::string line; std::getline(f, line);) {
        if (line.rfind("Tcp:", 0) != 0) continue;
        if (names.empty()) names = line;
        else values = line;
    }
    std::istringstream n(names), v(values);
    for (std::string key, val; n >> key && v >> val;)
        if (key == "OutSegs") return std::stoll(val);
    return -1;
}

int die(const char* what)
{
    std::fprintf(stderr, "tcp-segments: %s: %s\n", what, std::strerror(errno));
    return 1;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: tcp-segments CHUNK TOTAL [PORT]\n");
        return 2;
    }
    const std::size_t chunk = std::strtoull(argv[1], nullptr, 0), total = std::strtoull(argv[2], nullptr, 0);
    const int port = argc > 3 ? std::atoi(argv[3]) : 5099;
    if (chunk == 0 || total < chunk || total % chunk != 0) {
        std::fprintf(stderr, "tcp-segments: TOTAL must be a whole number of CHUNKs (CHUNK > 0)\n");
        return 2;
    }
    const int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 1) != 0) return die("bind 127.0.0.1");
    const pid_t pid = ::fork();
    if (pid == 0) {   // the receiver
        const int c = ::socket(AF_INET, SOCK_STREAM, 0);
        if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) _exit(die("connect"));
        std::vector<char> buf(256 * 1024);
        std::size_t got = 0;
        for (ssize_t n; got < total && (n = ::read(c, buf.data(), buf.size())) > 0;) got += static_cast<std::size_t>(n);
        _exit(::write(c, "k", 1) == 1 && got == total ? 0 : 1);
    }
    const int s = ::accept(ls, nullptr, nullptr);
    if (s < 0) return die("accept");
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::vector<char> buf(chunk, 7);
    const long long seg0 = out_segments();
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t sent = 0; sent < total; sent += chunk)
        for (std::size_t k = 0; k < chunk;) {
            const ssize_t n = ::write(s, buf.data() + k, chunk - k);
            if (n <= 0) return die("write");
            k += static_cast<std::size_t>(n);
        }
    char ack = 0;
    if (::read(s, &ack, 1) != 1) return die("the receiver's end");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const long long seg1 = out_segments();
    int status = 0;
    ::waitpid(pid, &status, 0);
    const double mib = static_cast<double>(total) / 1048576.0;
    std::printf("writes of %7zu bytes: %7.1f MiB/s, %5.0f TCP segments per MiB\n", chunk, mib / secs, static_cast<double>(seg1 - seg0) / mib);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
