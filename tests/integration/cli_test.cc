// lethectl's edges, as an operator and an auditor meet them, with the real binary against a
// real lethed: keys never lost silently, verification that says (and keeps to) its mode,
// identities and reasons off argv, every exit code of the table, commands and help that
// guide, and --wait that stops when only an operator can move a request on.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/assertions.h"
#include "tests/support/files.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kLethectl = LETHE_BINARY_DIR "/cli/lethectl";
constexpr absl::Duration kWait = absl::Seconds(90);


// lethectl as `role` against the mesh, with standard input from `stdin_file`.
CommandResult RunWithStdin(const Mesh& mesh, const std::string& role, const std::string& stdin_file,
                           const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" < \"$LETHE_STDIN\"", kLethectl,
                                   "--addr", mesh.addr(), "--certs-dir", mesh.certs_dir(), "--cert",
                                   mesh.client_cert(role), "--key", mesh.client_key(role)};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunCommand(argv, absl::Seconds(60), {"LETHE_STDIN=" + stdin_file});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : CommandResult{-1, r.status().ToString()};
}

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

TEST(CliKeys, GenerateNeverReplacesAKeyAndForceKeepsTheOldPair) {
  TempDir dir;
  const std::string prefix = dir.File("lethed");
  ASSERT_EQ(Lethectl({"keys", "generate", "--out", prefix}).exit_code, 0);
  const std::string key = ReadBytes(prefix + ".key"), pub = ReadBytes(prefix + ".pub");

  auto again = Lethectl({"keys", "generate", "--out", prefix});
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_THAT(again.output, HasSubstr(prefix + ".key exists; keys generate never replaces a key"));
  EXPECT_THAT(again.output, HasSubstr("--force"));
  EXPECT_EQ(ReadBytes(prefix + ".key"), key);

  auto forced = Lethectl({"keys", "generate", "--out", prefix, "--force"});
  ASSERT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_NE(ReadBytes(prefix + ".key"), key);
  std::vector<std::string> backups;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.path().filename().string().find(".bak-") != std::string::npos) backups.push_back(e.path().string());
  ASSERT_EQ(backups.size(), 2u) << forced.output;
  for (const auto& b : backups) {
    EXPECT_THAT(forced.output, HasSubstr("kept the old " + b));
    const bool is_key = b.find(".key.bak-") != std::string::npos;
    EXPECT_EQ(ReadBytes(b), is_key ? key : pub);
    if (is_key) {  // still private
      EXPECT_EQ(std::filesystem::status(b).permissions() & std::filesystem::perms::others_read,
                std::filesystem::perms::none);
    }
  }

  auto nodir = Lethectl({"keys", "generate", "--out", dir.File("no/such/dir/k")});
  EXPECT_EQ(nodir.exit_code, 5) << nodir.output;
  EXPECT_THAT(nodir.output, HasSubstr("mkdir -p"));
}

TEST(CliCommands, UnknownCommandsAreNamedWithASuggestionAndHelpShowsFlagsAndExitCodes) {
  auto typo = Lethectl({"reqest", "list"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_THAT(typo.output, HasSubstr("unknown command \"reqest\"; did you mean \"request\"?"));
  auto deeper = Lethectl({"--addr", "127.0.0.1:1", "request", "lst"});
  EXPECT_EQ(deeper.exit_code, 2);
  EXPECT_THAT(deeper.output, HasSubstr("lethectl request: unknown command \"lst\"; did you mean \"list\"?"));
  auto flag = Lethectl({"request", "list", "--no-such-flag"});
  EXPECT_EQ(flag.exit_code, 2) << flag.output;

  for (const auto& args : std::vector<std::vector<std::string>>{{"version"}, {"--version"}}) {
    auto v = Lethectl(args);
    EXPECT_EQ(v.exit_code, 0);
    EXPECT_THAT(v.output, ::testing::StartsWith("lethectl "));
  }
  auto help = Lethectl({"request", "erase", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.output, HasSubstr("--identities-from"));
  EXPECT_THAT(help.output, HasSubstr("Example:"));
  EXPECT_THAT(help.output, HasSubstr("Global flags"));
  EXPECT_THAT(help.output, HasSubstr("6  lethed unreachable"));
  EXPECT_EQ(Lethectl({"help"}).exit_code, 0);
  // Every command, at every level (the completion script lists them), shows an example, the
  // global flags and the exit codes in its --help.
  auto script = Lethectl({"completion", "bash"});
  ASSERT_EQ(script.exit_code, 0);
  int commands = 0;
  for (absl::string_view line : absl::StrSplit(script.output, '\n')) {
    const size_t a = line.find("    \""), b = line.find("\")");
    if (a != 0 || b == absl::string_view::npos || b <= 5) continue;
    std::vector<std::string> args = absl::StrSplit(line.substr(5, b - 5), ' ');
    args.push_back("--help");
    auto h = Lethectl(args);
    SCOPED_TRACE(absl::StrJoin(args, " "));
    EXPECT_EQ(h.exit_code, 0);
    EXPECT_THAT(h.output, HasSubstr("Example:\n  "));
    EXPECT_THAT(h.output, HasSubstr("Global flags"));
    EXPECT_THAT(h.output, HasSubstr("7  permission denied"));
    ++commands;
  }
  EXPECT_GE(commands, 30);

  // The completion script loads in bash and completes command words.
  auto completes = RunCommand({"/bin/bash", "-c",
                               "source <(\"$0\" completion bash) && COMP_WORDS=(lethectl request er) "
                               "COMP_CWORD=2 && _lethectl && echo \"${COMPREPLY[@]}\"",
                               kLethectl},
                              absl::Seconds(30));
  ASSERT_OK(completes);
  EXPECT_EQ(completes->exit_code, 0) << completes->output;
  EXPECT_THAT(completes->output, HasSubstr("erase"));
}

TEST(CliCommands, AnAddressWithoutAPortIsAUsageErrorAndAnUnreachableOneSaysWhatToCheck) {
  auto noport = Lethectl({"--insecure", "--addr", "localhost", "request", "list"});
  EXPECT_EQ(noport.exit_code, 2);
  EXPECT_THAT(noport.output, HasSubstr("give HOST:PORT"));
  auto down = Lethectl({"--insecure", "--addr", "127.0.0.1:1", "request", "list"});
  EXPECT_EQ(down.exit_code, 6) << down.output;
  EXPECT_THAT(down.output, HasSubstr("lethed did not answer at 127.0.0.1:1"));
}

class CliMesh : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Mesh::Options o;
    o.domains = {"assessments", "growth"};
    auto m = Mesh::Start(o);
    setup_ = m.status();
    if (m.ok()) mesh_ = m->release();
  }
  static void TearDownTestSuite() {
    delete mesh_;
    mesh_ = nullptr;
  }
  void SetUp() override { ASSERT_OK(setup_); }
  static inline Mesh* mesh_ = nullptr;
  static inline absl::Status setup_;
};

TEST_F(CliMesh, IdentitiesAndReasonsComeFromAFileOrStandardInputNeverArgv) {
  ASSERT_OK(mesh_->Plant(kAlice));
  const std::string ids = mesh_->work_dir() + "/alice.ids";
  WriteBytes(ids, "# Alice\nemail=" + kAlice.email + "\r\n\nuser_id=" + kAlice.user_id + "\n");
  const std::string reason = mesh_->work_dir() + "/reason.txt";
  WriteBytes(reason, "ticket 4711\n");
  auto erase = RunWithStdin(*mesh_, "operator", ids,
                            {"request", "erase", "--identities-from", "-", "--reason-from", reason, "--wait"});
  ASSERT_EQ(erase.exit_code, 0) << erase.output;
  EXPECT_EQ(*mesh_->Rows("assessments", kAlice), 0);
  EXPECT_EQ(*mesh_->Rows("growth", kAlice), 0);

  // The same from a file, for consent.
  const std::string bob = mesh_->work_dir() + "/bob.ids";
  WriteBytes(bob, "email=" + kBob.email + "\n");
  auto grant = RunLethectl(*mesh_, {"consent", "grant", "--identities-from", bob, "--purpose", "marketing",
                                    "--source", "cli-test"});
  EXPECT_EQ(grant.exit_code, 0) << grant.output;
  auto two = RunLethectl(*mesh_, {"consent", "show", "--identities-from", ids});
  EXPECT_EQ(two.exit_code, 2) << two.output;
  EXPECT_THAT(two.output, HasSubstr("give exactly one"));

  // "-" and "" are never identity values; a line without '=' names its line.
  for (const char* bad : {"email=-", "email="}) {
    auto r = RunLethectl(*mesh_, {"request", "erase", "--identity", bad});
    EXPECT_EQ(r.exit_code, 2) << r.output;
  }
  WriteBytes(ids, "email=" + kAlice.email + "\nnot an identity\n");
  auto line = RunLethectl(*mesh_, {"request", "erase", "--identities-from", ids});
  EXPECT_EQ(line.exit_code, 2);
  EXPECT_THAT(line.output, HasSubstr("--identities-from line 2"));
  EXPECT_THAT(line.output, Not(HasSubstr(kAlice.email)));
}

TEST_F(CliMesh, WaitStopsAtOnceWithExit4WhenOnlyAnOperatorCanMoveTheRequestOn) {
  ASSERT_OK(mesh_->Plant(kBob));
  // By email only: assessments is keyed by user_id and needs it.
  const absl::Time t0 = absl::Now();
  auto r = RunLethectl(*mesh_, {"request", "erase", "--identity", "email=" + kBob.email, "--wait"});
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_LT(absl::Now() - t0, absl::Seconds(60)) << "--wait sat out its timeout";
  EXPECT_THAT(r.output, HasSubstr("cannot progress until an operator acts"));
  EXPECT_THAT(r.output, HasSubstr("request add-identity"));
  EXPECT_THAT(r.output, HasSubstr("--identity user_id=..."));

  // Bob has an open request now: another for him is not submitted unless asked for, and the
  // open one is named (found by token: the CLI never sends anything but the identities).
  const std::string open_id = r.output.substr(r.output.find("request ") + 8, 32);
  auto dup = RunLethectl(*mesh_, {"request", "erase", "--identity", "email=" + kBob.email});
  EXPECT_EQ(dup.exit_code, 1) << dup.output;
  EXPECT_THAT(dup.output, HasSubstr("not submitted: an open request already covers this subject"));
  EXPECT_THAT(dup.output, HasSubstr(open_id + " (same email)"));
  EXPECT_THAT(dup.output, HasSubstr("--allow-duplicate"));
  EXPECT_THAT(dup.output, Not(HasSubstr(kBob.email)));

  // Without --wait: the id first, then each domain's state and the next step.
  auto plain = RunLethectl(*mesh_, {"request", "erase", "--identity", "email=" + kBob.email, "--allow-duplicate"});
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const std::vector<std::string> lines = absl::StrSplit(plain.output, '\n');
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0].size(), 32u) << plain.output;
  EXPECT_THAT(plain.output, HasSubstr("NEEDS_IDENTITY"));
  EXPECT_THAT(plain.output, HasSubstr("lethectl request add-identity " + lines[0]));
}

TEST_F(CliMesh, EveryExitCodeOfTheTable) {
  // 5: not found.
  auto missing = RunLethectl(*mesh_, {"request", "get", std::string(32, 'a')});
  EXPECT_EQ(missing.exit_code, 5) << missing.output;
  // 7: permission denied, with what the roles may do.
  auto denied = RunLethectlAs(*mesh_, "auditor", {"request", "erase", "--identity", "email=" + kAlice.email});
  EXPECT_EQ(denied.exit_code, 7) << denied.output;
  EXPECT_THAT(denied.output, HasSubstr("the role in your client certificate may not do this"));
  // 3: a watch that times out on a request still in progress.
  mesh_->StopAgent("growth");
  auto id = RunLethectl(*mesh_, {"request", "erase", "--identity", "email=" + kAlice.email, "--identity",
                                 "user_id=" + kAlice.user_id});
  ASSERT_EQ(id.exit_code, 0) << id.output;
  auto watch = RunLethectl(*mesh_, {"request", "watch", FirstLine(id.output), "--timeout", "2s"});
  EXPECT_EQ(watch.exit_code, 3) << watch.output;
  ASSERT_OK(mesh_->StartAgent("growth"));
  // 2: usage; 0: ok.
  EXPECT_EQ(RunLethectl(*mesh_, {"request", "watch", FirstLine(id.output), "--timeout", "soon"}).exit_code, 2);
  EXPECT_EQ(RunLethectl(*mesh_, {"request", "watch", FirstLine(id.output), "--timeout", "90s"}).exit_code, 0);
}

// Ctrl-C while --wait follows a request says it is recorded and how to follow it; progress
// reaches a pipe or file as it happens, not at exit.
TEST_F(CliMesh, InterruptedWaitPrintsTheRequestIdAndProgressIsNotBuffered) {
  mesh_->StopAgent("growth");
  const std::string log = mesh_->work_dir() + "/wait.log";
  auto child = Subprocess::Spawn({kLethectl, "--addr", mesh_->addr(), "--certs-dir", mesh_->certs_dir(), "--cert",
                                  mesh_->client_cert("operator"), "--key", mesh_->client_key("operator"),
                                  "request", "erase", "--identity", "email=" + kBob.email, "--identity",
                                  "user_id=" + kBob.user_id, "--wait", "--allow-duplicate"},
                                 log);
  ASSERT_OK(child);
  ASSERT_TRUE(WaitFor([&] { return ReadFileOrEmpty(log).find("PENDING") != std::string::npos; }, kWait))
      << "nothing reached the file while waiting: " << ReadFileOrEmpty(log);
  const std::string before = ReadFileOrEmpty(log);
  const std::string id = before.substr(before.find("request ") + 8, 32);
  (*child)->Kill(SIGINT);
  auto st = (*child)->Wait(absl::Seconds(30));
  ASSERT_OK(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 130) << *st;
  EXPECT_THAT(ReadFileOrEmpty(log), HasSubstr("request " + id + " is recorded and goes on"));
  EXPECT_THAT(ReadFileOrEmpty(log), HasSubstr("lethectl request watch " + id));
  ASSERT_OK(mesh_->StartAgent("growth"));
}

TEST_F(CliMesh, VerifySaysWhichModeItRanInAndContradictoryFlagsAreUsageErrors) {
  // Offline means offline: with an address nothing answers at, it still verifies.
  auto offline = Lethectl({"--addr", "127.0.0.1:1", "--insecure", "ledger", "verify", "--dir",
                      mesh_->data_dir(), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(offline.exit_code, 0) << offline.output;
  EXPECT_THAT(offline.output, HasSubstr("ledger verify: offline, from the files in"));
  auto online = RunLethectl(*mesh_, {"ledger", "verify", "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(online.exit_code, 0) << online.output;
  EXPECT_THAT(online.output, HasSubstr("ledger verify: online, through lethed at " + mesh_->addr()));

  auto both = Lethectl({"ledger", "verify", "--dir", mesh_->data_dir(), "--bundle", mesh_->data_dir(),
                   "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(both.exit_code, 2) << both.output;
  auto cert = Lethectl({"request", "certificate", std::string(32, 'a'), "--verify", "x.json", "--public-key",
                   mesh_->lethed_pub()});
  EXPECT_EQ(cert.exit_code, 2) << cert.output;
  EXPECT_THAT(cert.output, HasSubstr("takes no request id"));
}

// -o json prints every field: zeros, falses and empty lists too, and 64-bit integers as numbers.
TEST_F(CliMesh, JsonHasEveryFieldWithNumbersAsNumbers) {
  ASSERT_OK(mesh_->Plant(kAlice));
  auto done = mesh_->EraseAndWait(kAlice, kWait);
  ASSERT_OK(done);
  auto get = RunLethectl(*mesh_, {"request", "get", done->request_id(), "-o", "json"});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  const auto j = nlohmann::json::parse(get.output, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << get.output;
  EXPECT_EQ(j.at("overdue"), false);
  EXPECT_TRUE(j.at("received_unix_ms").is_number_integer());
  EXPECT_TRUE(j.at("extensions").is_array());
  int tables = 0;
  for (const auto& d : j.at("domains")) {
    EXPECT_TRUE(d.at("attempts").is_number_integer());
    for (const auto& t : d.at("tables")) {
      ++tables;
      EXPECT_EQ(t.at("rows_remaining"), 0) << t.dump();
      EXPECT_TRUE(t.at("rows_affected").is_number_integer());
    }
  }
  EXPECT_GT(tables, 0);
  // `request get ID -o FORMAT` as an auditor, piped into a Python one-liner reading $5 (the id).
  auto piped = [&](const std::string& format, const std::string& python) {
    auto r = RunCommand({"/bin/sh", "-c",
                         "\"$0\" --addr \"$1\" --certs-dir \"$2\" --cert \"$3\" --key \"$4\" request get \"$5\" -o " +
                             format + " | /usr/bin/python3 -c '" + python + "'",
                         kLethectl, mesh_->addr(), mesh_->certs_dir(), mesh_->client_cert("auditor"),
                         mesh_->client_key("auditor"), done->request_id()},
                        absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->output : r.status().ToString();
  };
  // The query of the issue: no table with rows remaining.
  EXPECT_EQ(piped("json", "import json,sys; v=json.load(sys.stdin); print(len([t for d in v[\"domains\"] "
                          "for t in d[\"tables\"] if t[\"rows_remaining\"]!=0]))"),
            "0\n");
  // -o yaml: the same document, as YAML (read back with PyYAML: types kept, ids still strings).
  EXPECT_EQ(piped("yaml", "import yaml,sys; v=yaml.safe_load(sys.stdin); "
                          "print(v[\"request_id\"] == \"'$5'\", v[\"overdue\"] is False, "
                          "isinstance(v[\"received_unix_ms\"], int), "
                          "[t[\"rows_remaining\"] for d in v[\"domains\"] for t in d[\"tables\"]].count(0) > 0)"),
            "True True True True\n");
}

// On a terminal, --wait keeps one line per domain and rewrites it in place; --timeout and
// --by read the same durations.
TEST_F(CliMesh, OnATerminalWaitRewritesEachDomainsLineAndDurationsShareOneSyntax) {
  const Person carol{"44440001", "carol@example.com"};
  ASSERT_OK(mesh_->Plant(carol));
  const std::string ids = mesh_->work_dir() + "/carol.ids";
  WriteBytes(ids, "email=" + carol.email + "\nuser_id=" + carol.user_id + "\n");
  auto tty = RunCommand({"/usr/bin/script", "-qec",
                         absl::StrJoin({kLethectl, std::string("--addr"), mesh_->addr(), std::string("--certs-dir"),
                                        mesh_->certs_dir(), std::string("--cert"), mesh_->client_cert("operator"),
                                        std::string("--key"), mesh_->client_key("operator"), std::string("request"),
                                        std::string("erase"), std::string("--identities-from"), ids,
                                        std::string("--wait"), std::string("--timeout"), std::string("1d")},
                                       " "),
                         "/dev/null"},
                        absl::Seconds(90));
  ASSERT_OK(tty);
  EXPECT_EQ(tty->exit_code, 0) << tty->output;
  EXPECT_THAT(tty->output, HasSubstr("\x1b[2K")) << "no line was rewritten in place";
  EXPECT_THAT(tty->output, HasSubstr("COMPLETED"));
  const std::string id = tty->output.substr(tty->output.find("request ") + 8, 32);
  for (const char* d : {"2w", "36h", "90m", "1h30m"}) {
    auto w = RunLethectl(*mesh_, {"request", "watch", id, "--timeout", d});
    EXPECT_EQ(w.exit_code, 0) << d << ": " << w.output;
  }
  auto by = RunLethectl(*mesh_, {"request", "extend", id, "--by", "36h", "--reason", "x"});
  EXPECT_EQ(by.exit_code, 1) << by.output;  // parsed; refused because the request is closed
  EXPECT_THAT(by.output, Not(HasSubstr("not a duration")));
}

// docs/cli-json.md: each read command of the first table prints its message with every field.
TEST_F(CliMesh, JsonOfEveryReadCommandHasEveryFieldOfItsMessage) {
  ASSERT_OK(mesh_->Plant(kAlice));
  auto done = mesh_->EraseAndWait(kAlice, kWait);
  ASSERT_OK(done);
  const std::string ids = mesh_->work_dir() + "/json.ids";
  WriteBytes(ids, "email=" + kAlice.email + "\n");
  struct Case {
    std::vector<std::string> args;
    const google::protobuf::Descriptor* message;
  };
  const std::vector<Case> cases = {
      {{"request", "get", done->request_id()}, v1::RequestView::descriptor()},
      {{"request", "list"}, v1::ListRequestsResponse::descriptor()},
      {{"request", "list", "--overdue"}, v1::ListRequestsResponse::descriptor()},
      {{"request", "certificate", done->request_id(), "--public-key", mesh_->lethed_pub()},
       v1::ErasureCertificate::descriptor()},
      {{"agent", "list"}, v1::ListAgentsResponse::descriptor()},
      {{"policy", "show"}, v1::ShowPolicyResponse::descriptor()},
      {{"consent", "show", "--identities-from", ids}, v1::ShowConsentResponse::descriptor()},
      {{"consent", "list", "--purpose", "marketing"}, v1::ListConsentResponse::descriptor()},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    args.push_back("-o");
    args.push_back("json");
    auto r = RunLethectl(*mesh_, args);
    SCOPED_TRACE(absl::StrJoin(c.args, " "));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto j = nlohmann::json::parse(r.output, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.output;
    for (int i = 0; i < c.message->field_count(); ++i) {
      const auto* f = c.message->field(i);
      if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated()) continue;
      EXPECT_TRUE(j.contains(f->name())) << c.message->name() << "." << f->name() << " missing";
    }
  }
}

}  // namespace
}  // namespace lethe::testing
