// RoleAuthorizer (controlplane/authorizer.h) on the AuthContext a connection's calls share:
// every call is authorised for its own method, and the caller's properties are added once
// per connection, not once per call.
#include "controlplane/authorizer.h"

#include <map>
#include <thread>

#include "base/file_system.h"
#include "crypto/x509.h"
#include "gtest/gtest.h"
#include "lethe/v1/api.pb.h"
#include "tests/support/files.h"

namespace lethe::controlplane {
namespace {

// What gRPC gives the processor: one context per connection, its properties appended to.
class ConnectionContext final : public grpc::AuthContext {
 public:
  explicit ConnectionContext(std::string pem) { AddProperty("x509_pem_cert", pem); adds_ = 0; }
  bool IsPeerAuthenticated() const override { return true; }
  std::vector<grpc::string_ref> GetPeerIdentity() const override { return FindPropertyValues(peer_); }
  std::string GetPeerIdentityPropertyName() const override { return peer_; }
  std::vector<grpc::string_ref> FindPropertyValues(const std::string& name) const override {
    std::vector<grpc::string_ref> out;
    for (const auto& [k, v] : props_)
      if (k == name) out.emplace_back(v);
    return out;
  }
  grpc::AuthPropertyIterator begin() const override { return Iterator(); }
  grpc::AuthPropertyIterator end() const override { return Iterator(); }
  void AddProperty(const std::string& key, const grpc::string_ref& value) override {
    props_.emplace_back(key, std::string(value.data(), value.size()));
    ++adds_;
  }
  bool SetPeerIdentityPropertyName(const std::string& name) override {
    peer_ = name;
    return true;
  }
  int adds() const { return adds_; }

 private:
  struct Iterator : grpc::AuthPropertyIterator {};
  std::vector<std::pair<std::string, std::string>> props_;  // appended to, as gRPC does
  std::string peer_;
  int adds_ = 0;
};

grpc::Status Call(RoleAuthorizer& authorizer, ConnectionContext& ctx, const std::string& method) {
  grpc::AuthMetadataProcessor::InputMetadata md;
  md.emplace(grpc::string_ref(":path"), grpc::string_ref(method));
  grpc::AuthMetadataProcessor::OutputMetadata consumed, response;
  return authorizer.Process(md, &ctx, &consumed, &response);
}

class RoleAuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::CreateCa(dir_.path(), "lethe.test").ok());
    ASSERT_TRUE(crypto::CreateClientCert(dir_.path(), "operator", "olga").ok());
    pem_ = lethe::ReadFile(dir_.File("client.olga.crt")).value();
  }
  testing::TempDir dir_;
  std::string pem_;
  RoleAuthorizer authorizer_{"lethe.test"};
};

TEST_F(RoleAuthorizerTest, AConnectionsCallsAddTheCallersPropertiesOnce) {
  ConnectionContext ctx(pem_);
  for (int i = 0; i < 100; ++i) {
    grpc::Status s = Call(authorizer_, ctx, "/lethe.v1.Consent/Change");
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(ctx.adds(), 4);  // role, name, SPIFFE id, certificate hash
  ASSERT_EQ(ctx.FindPropertyValues("lethe.role").size(), 1u);
  EXPECT_EQ(ctx.FindPropertyValues("lethe.role")[0], "operator");
}

TEST_F(RoleAuthorizerTest, EveryCallIsAuthorisedForItsOwnMethod) {
  ConnectionContext ctx(pem_);
  ASSERT_TRUE(Call(authorizer_, ctx, "/lethe.v1.Consent/Change").ok());
  // The same connection, a method an operator may not call.
  grpc::Status s = Call(authorizer_, ctx, "/lethe.v1.Agents/Enroll");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("needs role admin"), std::string::npos) << s.error_message();
  EXPECT_EQ(Call(authorizer_, ctx, "/lethe.v1.Nothing/Here").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Call(authorizer_, ctx, "/lethe.v1.SubjectRequests/Submit").ok());
}

TEST_F(RoleAuthorizerTest, ConcurrentFirstCallsOfAConnectionAddThePropertiesOnce) {
  ConnectionContext ctx(pem_);
  std::vector<std::thread> pool;
  std::atomic<int> refused{0};
  for (int t = 0; t < 8; ++t)
    pool.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (!Call(authorizer_, ctx, "/lethe.v1.Consent/Change").ok()) refused.fetch_add(1);
    });
  for (auto& th : pool) th.join();
  EXPECT_EQ(refused.load(), 0);
  EXPECT_EQ(ctx.adds(), 4);
}

// Every method of every service in api.proto has a rule: a method added without one would be
// refused to everybody (RolesFor is empty), the fault-injection service's included.
TEST(Rules, EveryMethodOfTheApiHasOne) {
  const google::protobuf::FileDescriptor* api = v1::SubmitRequest::descriptor()->file();
  ASSERT_GE(api->service_count(), 6);
  for (int i = 0; i < api->service_count(); ++i) {
    const auto* service = api->service(i);
    for (int j = 0; j < service->method_count(); ++j) {
      const std::string method = "/" + service->full_name() + "/" + service->method(j)->name();
      EXPECT_FALSE(RolesFor(method).empty()) << method << " has no rule in authorizer.cc";
    }
  }
  EXPECT_EQ(RolesFor("/lethe.v1.EmbeddedKafkaFaults/SetBrokerUp"), std::vector<std::string>{kRoleAdmin});
}

}  // namespace
}  // namespace lethe::controlplane
