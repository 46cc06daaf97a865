// Unit tests for the hygiene rules (hygiene.h) the Auditor applies to free text and sealed
// fields: what may look like an identifier, and what must look like ciphertext.
#include <string>

#include "audit/hygiene.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lethe::audit {
namespace {

using ::testing::HasSubstr;

TEST(Hygiene, FreeTextAndSealedRules) {
  EXPECT_EQ(FreeTextProblem("signup-form-v3", 100), "");
  EXPECT_EQ(FreeTextProblem("2026-12-04 import", 100), "");
  EXPECT_EQ(FreeTextProblem("batch 123456 of 2026", 100), "");
  EXPECT_EQ(FreeTextProblem("größe über 10 Zeilen", 100), "");
  EXPECT_THAT(FreeTextProblem("x@y", 100), HasSubstr("'@'"));
  EXPECT_THAT(FreeTextProblem("1234567", 100), HasSubstr("7 or more digits"));
  EXPECT_THAT(FreeTextProblem("+1 (555) 010-9999", 100), HasSubstr("7 or more digits"));
  EXPECT_THAT(FreeTextProblem("20261204", 100), HasSubstr("7 or more digits"));
  EXPECT_THAT(FreeTextProblem("2026-12-044", 100), HasSubstr("7 or more digits"));
  EXPECT_EQ(FreeTextProblem("12-34-5 6", 100), "");  // 6 digits joined by single separators
  EXPECT_THAT(FreeTextProblem("12-34-56 7", 100), HasSubstr("7 or more digits"));
  EXPECT_EQ(FreeTextProblem("12--34--56--78", 100), "");  // two separators end a run
  EXPECT_THAT(FreeTextProblem("tab\there", 100), HasSubstr("control character"));
  EXPECT_THAT(FreeTextProblem(std::string("\xC3\x28", 2), 100), HasSubstr("UTF-8"));
  EXPECT_THAT(FreeTextProblem(std::string("\xC2\x85", 2), 100), HasSubstr("UTF-8"));  // C1 NEL
  EXPECT_THAT(FreeTextProblem(std::string(101, 'a'), 100), HasSubstr("longer than 100"));
  EXPECT_EQ(SealedProblem(crypto::RandomBytes(28)), "");
  EXPECT_THAT(SealedProblem(crypto::RandomBytes(27)), HasSubstr("shorter"));
  EXPECT_THAT(SealedProblem(std::string(64, 'a')), HasSubstr("plain text"));
}

}  // namespace
}  // namespace lethe::audit
