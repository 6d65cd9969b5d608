#pragma once
// A unit record as its kind's typed struct: every field has a default (a record written before the field existed
// reads), and a field of the wrong type is an error naming the unit and the fix, not an exception.
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace devemu::core {

template <class T>
[[nodiscard]] Result<T> typed_record(const nlohmann::json& j, std::string_view kind)
{
    try {
        return j.get<T>();
    } catch (const nlohmann::json::exception& e) {
        return fail(Errc::invalid_input, "unreadable " + std::string(kind) + " record: " + e.what(), j.value("name", std::string("?")),
                    "devemu down it with the devemu that brought it up");
    }
}

}  // namespace devemu::core
