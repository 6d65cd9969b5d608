#pragma once
// A directory of its own under /tmp for one test, removed with everything in it when the test ends.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

struct TempDir {
    std::filesystem::path root;
    TempDir()
    {
        char tmpl[] = "/tmp/devemu-test-XXXXXX";
        root = ::mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(root); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    // Writes `text` to root/name, making its directories; returns the file's path.
    std::filesystem::path write(const std::string& name, const std::string& text) const
    {
        std::filesystem::create_directories((root / name).parent_path());
        std::ofstream(root / name) << text;
        return root / name;
    }
};
