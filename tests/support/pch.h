// The headers (nearly) every test binary parses, precompiled once for all of them
// (tests/CMakeLists.txt, REUSE_FROM): gtest and gmock, gRPC, protobuf, Abseil and the standard
// library. Only headers found on the system include path, and none whose meaning depends on a
// definition one test target has and another lacks (spdlog's, for one), so that every test
// can use the same precompiled file. Nothing here is needed for a test to compile: each test
// still includes what it uses.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
