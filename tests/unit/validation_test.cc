// The input rules of controlplane/validation.h, each accepted and refused: the error is
// kInvalidArgument, names the field, and quotes at most a short prefix of what was sent
// (identity values, personal data, not at all).
#include "controlplane/validation.h"

#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/control_plane.h"

namespace lethe::controlplane {
namespace {

using ::lethe::testing::AgentKeyPair;
using ::lethe::testing::Identities;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kPolicy[] = R"(version: 1
name: unit
identities: [email, user_id]
purposes:
  - name: marketing
    description: x
    domains: [growth]
    erase_on_withdrawal: true
domains:
  - name: growth
    postgres:
      tables:
        - {table: g.contacts, key: email, identity: email, action: delete}
)";

const policies::Policy& Policy() {
  static const policies::Policy p = policies::Policy::Parse(kPolicy, "unit").value();
  return p;
}

// kInvalidArgument whose message starts with "<field>: ".
void ExpectRefused(const absl::Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), StartsWith(field + ": ")) << s;
}

TEST(ValidateIdentities, AcceptsDeclaredTypesWithValuesUpToTheLimit) {
  EXPECT_TRUE(ValidateIdentities(Policy(), Identities({{"email", "a@example.com"}, {"user_id", "u"}})).ok());
  EXPECT_TRUE(ValidateIdentities(Policy(), Identities({{"email", std::string(kMaxIdentityValueBytes, 'x')}})).ok());
  std::vector<std::pair<std::string, std::string>> many(kMaxIdentities, {"email", "a@example.com"});
  EXPECT_TRUE(ValidateIdentities(Policy(), Identities(many)).ok());
}

TEST(ValidateIdentities, RefusesAnEmptyOrOverlongList) {
  ExpectRefused(ValidateIdentities(Policy(), {}), "identities");
  std::vector<std::pair<std::string, std::string>> many(kMaxIdentities + 1, {"email", "a@example.com"});
  ExpectRefused(ValidateIdentities(Policy(), Identities(many)), "identities");
}

TEST(ValidateIdentities, RefusesEmptyAndUndeclaredTypesQuotingAShortPrefixOnly) {
  ExpectRefused(ValidateIdentities(Policy(), Identities({{"email", "a@example.com"}, {"", "x"}})),
                "identities[1].type");
  ExpectRefused(ValidateIdentities(Policy(), Identities({{"phone", "x"}})), "identities[0].type");
  // Not a type name at all (the policy's rule, [a-z0-9_]+): refused as undeclared.
  ExpectRefused(ValidateIdentities(Policy(), Identities({{"E-Mail", "x"}})), "identities[0].type");
  const std::string huge = "t" + std::string(5000, 'y');
  absl::Status s = ValidateIdentities(Policy(), Identities({{huge, "x"}}));
  ExpectRefused(s, "identities[0].type");
  EXPECT_THAT(std::string(s.message()), HasSubstr(std::string(kMaxQuotedNameBytes - 1, 'y') + "..."));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr(std::string(kMaxQuotedNameBytes, 'y'))));
  EXPECT_THAT(std::string(s.message()), HasSubstr("the policy declares: email, user_id"));
}

TEST(ValidateIdentities, RefusesEmptyAndOverlongValuesWithoutQuotingThem) {
  ExpectRefused(ValidateIdentities(Policy(), Identities({{"email", ""}})), "identities[0].value");
  const std::string value = "secret-" + std::string(kMaxIdentityValueBytes, 'v');
  absl::Status s = ValidateIdentities(Policy(), Identities({{"user_id", "ok"}, {"email", value}}));
  ExpectRefused(s, "identities[1].value");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("secret-")));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("vvvv")));
}

TEST(ValidateIdentities, ASingleIdentityIsNamedWithoutAnIndex) {
  ExpectRefused(ValidateIdentities(Policy(), Identities({{"email", ""}}), "identity"), "identity.value");
  ExpectRefused(ValidateIdentities(Policy(), Identities({{"x", "v"}}), "identity"), "identity.type");
}

TEST(NormalizeIdentities, AppliesEachTypesNormalizersAndRefusesWhatBecomesEmpty) {
  const policies::Policy p =
      policies::Policy::Parse(absl::StrReplaceAll(kPolicy, {{"identities: [email, user_id]",
                                                             "identities: [{name: email, normalize: "
                                                             "[trim, lowercase]}, user_id]"}}),
                              "unit")
          .value();
  auto out = NormalizeIdentities(p, Identities({{"email", " Alice@Example.COM\n"}, {"user_id", " U1 "}}));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ(RevealSecret((*out)[0].value), "alice@example.com");
  EXPECT_EQ(RevealSecret((*out)[1].value), " U1 ");  // user_id has no normalizers
  // Validated as received first: the type, and the length before trimming.
  ExpectRefused(NormalizeIdentities(p, Identities({{"phone", "x"}})).status(), "identities[0].type");
  ExpectRefused(
      NormalizeIdentities(p, Identities({{"email", std::string(kMaxIdentityValueBytes + 1, ' ')}})).status(),
      "identities[0].value");
  absl::Status blank = NormalizeIdentities(p, Identities({{"user_id", "u"}, {"email", " \t "}})).status();
  ExpectRefused(blank, "identities[1].value");
  EXPECT_THAT(std::string(blank.message()), HasSubstr("empty once normalized"));
  ExpectRefused(NormalizeIdentities(p, Identities({{"email", "\r\n"}}), "identity").status(), "identity.value");
  // Without normalizers the values pass unchanged.
  auto plain = NormalizeIdentities(Policy(), Identities({{"email", " A@B "}}));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(RevealSecret((*plain)[0].value), " A@B ");
}

TEST(CheckText, AcceptsSingleLineTextUpToTheLimit) {
  EXPECT_TRUE(CheckText("reason", "because", 7, "why").ok());
  EXPECT_TRUE(CheckText("reason", "bon réservé", 100, "why").ok());
}

TEST(CheckText, RefusesEmptyOverlongAndControlCharactersWithoutQuoting) {
  absl::Status s = CheckText("reason", "", 10, "why the subject waits");
  ExpectRefused(s, "reason");
  EXPECT_THAT(std::string(s.message()), HasSubstr("why the subject waits"));
  s = CheckText("reason", "tell-me-more", 10, "why");
  ExpectRefused(s, "reason");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("tell-me")));
  ExpectRefused(CheckText("reason", "two\nlines", 100, "why"), "reason");
  ExpectRefused(CheckText("reason", "del\x7f", 100, "why"), "reason");
  ExpectRefused(CheckText("reason", std::string("nul\0x", 5), 100, "why"), "reason");
}

TEST(CheckClearText, RefusesWhatLooksLikePersonalData) {
  EXPECT_TRUE(CheckClearText("source", "signup-form-v3", 100, "where").ok());
  absl::Status s = CheckClearText("source", "from bob@example.com", 100, "where");
  ExpectRefused(s, "source");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("bob@")));
  s = CheckClearText("source", "call 555 010 9999", 100, "where");
  ExpectRefused(s, "source");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("9999")));
}

TEST(ValidateErasureReason, IsOptionalAndBounded) {
  EXPECT_TRUE(ValidateErasureReason("").ok());
  EXPECT_TRUE(ValidateErasureReason(std::string(kMaxReasonBytes, 'r')).ok());
  absl::Status s = ValidateErasureReason(std::string(kMaxReasonBytes + 1, 'r'));
  ExpectRefused(s, "reason");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("rrrr")));
}

TEST(ValidateExtension, NeedsPositiveWholeSecondsAndAReason) {
  EXPECT_TRUE(ValidateExtension(absl::Hours(24), "complex request").ok());
  ExpectRefused(ValidateExtension(absl::ZeroDuration(), "complex request"), "extension_seconds");
  ExpectRefused(ValidateExtension(-absl::Seconds(1), "complex request"), "extension_seconds");
  ExpectRefused(ValidateExtension(absl::Milliseconds(1500), "complex request"), "extension_seconds");
  ExpectRefused(ValidateExtension(absl::Hours(24), ""), "reason");
  ExpectRefused(ValidateExtension(absl::Hours(24), std::string(kMaxExtensionReasonBytes + 1, 'r')), "reason");
  EXPECT_TRUE(ValidateExtension(absl::Hours(24), std::string(kMaxExtensionReasonBytes, 'r')).ok());
}

TEST(ValidateExtensionSeconds, AtMostTenYears) {
  EXPECT_TRUE(ValidateExtensionSeconds(1).ok());
  EXPECT_TRUE(ValidateExtensionSeconds(int64_t{10} * 365 * 86400).ok());
  ExpectRefused(ValidateExtensionSeconds(0), "extension_seconds");
  ExpectRefused(ValidateExtensionSeconds(-5), "extension_seconds");
  ExpectRefused(ValidateExtensionSeconds(int64_t{10} * 365 * 86400 + 1), "extension_seconds");
}

TEST(ValidatePurpose, ReturnsTheDeclaredPurposeAndQuotesUnknownOnesShortly) {
  auto p = ValidatePurpose(Policy(), "marketing");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name, "marketing");
  EXPECT_TRUE((*p)->erase_on_withdrawal);
  ExpectRefused(ValidatePurpose(Policy(), "").status(), "purpose");
  absl::Status s = ValidatePurpose(Policy(), "analytics").status();
  ExpectRefused(s, "purpose");
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"analytics\""));
  EXPECT_THAT(std::string(s.message()), HasSubstr("declares: marketing"));
  s = ValidatePurpose(Policy(), std::string(500, 'p')).status();
  ExpectRefused(s, "purpose");
  EXPECT_THAT(std::string(s.message()), HasSubstr(std::string(kMaxQuotedNameBytes, 'p') + "..."));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr(std::string(kMaxQuotedNameBytes + 1, 'p'))));
}

TEST(ValidateConsent, StatusAndSource) {
  EXPECT_TRUE(ValidateConsentStatus(v1::GRANTED).ok());
  EXPECT_TRUE(ValidateConsentStatus(v1::WITHDRAWN).ok());
  ExpectRefused(ValidateConsentStatus(v1::CONSENT_STATUS_UNSPECIFIED), "status");
  ExpectRefused(ValidateConsentStatus(static_cast<v1::ConsentStatus>(77)), "status");
  EXPECT_TRUE(ValidateConsentSource("signup-form-v3").ok());
  EXPECT_TRUE(ValidateConsentSource(std::string(kMaxConsentSourceBytes, 's')).ok());
  ExpectRefused(ValidateConsentSource(""), "source");
  ExpectRefused(ValidateConsentSource(std::string(kMaxConsentSourceBytes + 1, 's')), "source");
  ExpectRefused(ValidateConsentSource("eve@example.com"), "source");
}

TEST(ValidateAgent, DomainOfThePolicyAndAPemWithBothKeys) {
  EXPECT_TRUE(ValidateAgentDomain(Policy(), "growth").ok());
  absl::Status s = ValidateAgentDomain(Policy(), "billing-" + std::string(200, 'b'));
  ExpectRefused(s, "domain");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr(std::string(41, 'b'))));
  AgentKeyPair k;
  auto keys = ParseAgentKeys(k.Pem());
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->signing.KeyId(), k.sign.public_key().KeyId());
  EXPECT_EQ(keys->encryption.KeyId(), k.enc.public_key().KeyId());
  ExpectRefused(ParseAgentKeys("not a pem").status(), "public_key_pem");
  s = ParseAgentKeys(k.sign.public_key().ToPem()).status();
  ExpectRefused(s, "public_key_pem");
  EXPECT_THAT(std::string(s.message()), HasSubstr("X25519"));
}

TEST(ValidateRevocation, DomainKeyIdAndOptionalClearReason) {
  EXPECT_TRUE(ValidateRevocation("growth", "0123456789abcdef", "").ok());
  EXPECT_TRUE(ValidateRevocation("growth", "0123456789abcdef", "laptop lost").ok());
  ExpectRefused(ValidateRevocation("", "0123456789abcdef", ""), "domain");
  ExpectRefused(ValidateRevocation("growth", "0123456789ABCDEF", ""), "key_id");
  ExpectRefused(ValidateRevocation("growth", "0123456789abcde", ""), "key_id");
  ExpectRefused(ValidateRevocation("growth", "0123456789abcdef", "ask bob@example.com"), "reason");
  ExpectRefused(ValidateRevocation("growth", "0123456789abcdef", std::string(kMaxRevocationReasonBytes + 1, 'r')),
                "reason");
}

TEST(ValidatePolicySize, AtMostOneMebibyte) {
  EXPECT_TRUE(ValidatePolicySize(std::string(kMaxPolicyBytes, '#')).ok());
  absl::Status s = ValidatePolicySize(std::string(kMaxPolicyBytes + 1, '#'));
  ExpectRefused(s, "yaml");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("###")));
}

TEST(ValidateRequestId, ThirtyTwoLowercaseHexCharacters) {
  EXPECT_TRUE(ValidateRequestId("0123456789abcdef0123456789abcdef").ok());
  ExpectRefused(ValidateRequestId(""), "request_id");
  ExpectRefused(ValidateRequestId("0123456789abcdef0123456789abcde"), "request_id");
  ExpectRefused(ValidateRequestId("0123456789ABCDEF0123456789abcdef"), "request_id");
  absl::Status s = ValidateRequestId("0123456789abcdef0123456789abcdeg");
  ExpectRefused(s, "request_id");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("0123")));
}

}  // namespace
}  // namespace lethe::controlplane
