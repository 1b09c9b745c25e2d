// Switches read from the environment (debug and comparison knobs such as CORRAL_BACKWARD_F32).
#pragma once
#include <cstdlib>
#include <string_view>

namespace corral {

// True when the variable is set to anything but "" or "0".
inline bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string_view(v) != "0";
}

}  // namespace corral
