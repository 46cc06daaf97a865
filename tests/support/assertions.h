// GoogleTest assertions for absl::Status and absl::StatusOr.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#define LETHE_TEST_CONCAT_INNER_(a, b) a##b
#define LETHE_TEST_CONCAT_(a, b) LETHE_TEST_CONCAT_INNER_(a, b)

// ASSERT_OK_AND_ASSIGN(auto x, StatusOrExpr()): fails the test with the status, or binds x.
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  LETHE_ASSERT_OK_AND_ASSIGN_IMPL_(LETHE_TEST_CONCAT_(statusor_, __LINE__), lhs, rexpr)
#define LETHE_ASSERT_OK_AND_ASSIGN_IMPL_(var, lhs, rexpr) \
  auto var = (rexpr);                                     \
  ASSERT_TRUE(var.ok()) << var.status();                  \
  lhs = std::move(var).value()

namespace lethe::testing {
inline const absl::Status& AsStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& AsStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace lethe::testing

// ASSERT_OK(expr): expr is an absl::Status or an absl::StatusOr; fails the test with it.
#define ASSERT_OK(expr)                                                 \
  do {                                                                  \
    const ::absl::Status st_ = ::lethe::testing::AsStatus((expr));     \
    ASSERT_TRUE(st_.ok()) << st_;                                       \
  } while (0)

// EXPECT_OK(expr): as ASSERT_OK, but the test goes on.
#define EXPECT_OK(expr)                                                 \
  do {                                                                  \
    const ::absl::Status st_ = ::lethe::testing::AsStatus((expr));     \
    EXPECT_TRUE(st_.ok()) << st_;                                       \
  } while (0)
