// Unit tests for the RFC 9162 §2.1 proofs in ledger/merkle.h (MerkleTree, VerifyInclusion,
// RootFromInclusionProof, VerifyConsistency):
//  - the transparency-dev/merkle JSON vectors in tests/testdata/rfc9162 (Apache-2.0, LICENSE
//    beside them), every file, read at run time;
//  - MerkleTree against a slow, obviously-correct reference written from the RFC text (MTH,
//    PATH, PROOF/SUBPROOF) for every tree size 1..1000;
//  - hostile variants of our own: flipped bits, extra and missing hashes, shifted index and
//    sizes, wrong roots, malformed and out-of-range arguments.
//  - leaf and node hashing, and CompactRange's roots of the RFC 6962 test tree, against
//    known answers.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/merkle.h"
#include "nlohmann/json.hpp"
#include "tests/support/assertions.h"
#include "tests/support/rfc6962.h"

namespace lethe::ledger {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------
// The reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 transcribed literally. D[k1:k2] is
// the half-open range of leaves [begin, end). Quadratic and allocation-heavy on purpose.

// The largest power of two smaller than n (n > 1).
size_t SplitPoint(size_t n) {
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

class ReferenceTree {
 public:
  explicit ReferenceTree(std::vector<std::string> leaves) : leaves_(std::move(leaves)) {
    // MTH({d(0)}) = SHA-256(0x00 || d(0)), computed once per leaf.
    for (const std::string& d : leaves_) leaf_hashes_.push_back(crypto::Sha256('\0' + d));
  }

  const std::string& LeafHash(size_t i) const { return leaf_hashes_[i]; }

  // MTH(D[n]).
  // Memoised: the definition is evaluated once per range, which keeps a test that asks for
  // thousands of roots and proofs fast without changing what is computed.
  std::string Mth(size_t begin, size_t end) const {
    const size_t n = end - begin;
    if (n == 0) return crypto::Sha256("");
    if (n == 1) return leaf_hashes_[begin];
    auto [it, fresh] = mth_.try_emplace({begin, end});
    if (fresh) {
      const size_t k = SplitPoint(n);
      it->second = crypto::Sha256('\x01' + Mth(begin, begin + k) + Mth(begin + k, end));
    }
    return it->second;
  }
  std::string Root(size_t n) const { return Mth(0, n); }

  // PATH(m, D[n]) for the tree of the first n leaves.
  std::vector<std::string> Path(size_t m, size_t n) const { return Path(m, 0, n); }

  // PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
  std::vector<std::string> Proof(size_t m, size_t n) const { return Subproof(m, 0, n, true); }

  // The sides (true = the proof hash is on the left) of PATH(m, D[n]), lowest first: what
  // an inclusion verifier uses besides the hashes themselves.
  std::vector<bool> PathSides(size_t m, size_t n) const {
    std::vector<bool> sides;
    size_t begin = 0, end = n;
    std::vector<bool> top_down;
    while (end - begin > 1) {
      const size_t k = SplitPoint(end - begin);
      if (m - begin < k) {
        top_down.push_back(false);  // sibling MTH(D[k:n]) on the right
        end = begin + k;
      } else {
        top_down.push_back(true);  // sibling MTH(D[0:k]) on the left
        begin += k;
      }
    }
    sides.assign(top_down.rbegin(), top_down.rend());
    return sides;
  }

  // The shape of PROOF(m, D[n]) as a verifier sees it, lowest first: one letter per hash,
  // 'l' for MTH(D[0:k]) (left of the old tree's part), 'r' for MTH(D[k:n]) (right of it),
  // 's' for the SUBPROOF(m, D[m], false) hash that seeds the chains, or a leading '*' when
  // no hash does and the old root itself is the seed.
  std::string ProofShape(size_t m, size_t n) const {
    std::string top_down;
    bool b = true;
    while (m != n) {
      const size_t k = SplitPoint(n);
      if (m <= k) {
        top_down += 'r';
        n = k;
      } else {
        top_down += 'l';
        m -= k;
        n -= k;
        b = false;
      }
    }
    top_down += b ? '*' : 's';
    return std::string(top_down.rbegin(), top_down.rend());
  }

 private:
  std::vector<std::string> Path(size_t m, size_t begin, size_t end) const {
    const size_t n = end - begin;
    if (n == 1) return {};
    const size_t k = SplitPoint(n);
    std::vector<std::string> out;
    if (m < k) {
      out = Path(m, begin, begin + k);
      out.push_back(Mth(begin + k, end));
    } else {
      out = Path(m - k, begin + k, end);
      out.push_back(Mth(begin, begin + k));
    }
    return out;
  }

  std::vector<std::string> Subproof(size_t m, size_t begin, size_t end, bool b) const {
    const size_t n = end - begin;
    if (m == n) {
      if (b) return {};
      return {Mth(begin, end)};
    }
    const size_t k = SplitPoint(n);
    std::vector<std::string> out;
    if (m <= k) {
      out = Subproof(m, begin, begin + k, b);
      out.push_back(Mth(begin + k, end));
    } else {
      out = Subproof(m - k, begin + k, end, false);
      out.push_back(Mth(begin, begin + k));
    }
    return out;
  }

  std::vector<std::string> leaves_;
  std::vector<std::string> leaf_hashes_;
  mutable std::map<std::pair<size_t, size_t>, std::string> mth_;
};

std::vector<std::string> RandomLeaves(std::mt19937_64& rng, size_t count) {
  std::vector<std::string> leaves;
  for (size_t i = 0; i < count; ++i) {
    std::string leaf(rng() % 40, '\0');
    for (char& c : leaf) c = static_cast<char>(rng());
    leaves.push_back(std::move(leaf));
  }
  return leaves;
}

MerkleTree TreeOf(const ReferenceTree& ref, size_t n) {
  MerkleTree tree;
  for (size_t i = 0; i < n; ++i) tree.Append(ref.LeafHash(i));
  return tree;
}

std::string Hex(const std::vector<std::string>& hashes) {
  std::string out = "[";
  for (const std::string& h : hashes) out += (out.size() > 1 ? " " : "") + crypto::Hex(h);
  return out + "]";
}

std::string FlipBit(std::string s, size_t bit) {
  s[bit / 8] = static_cast<char>(s[bit / 8] ^ (1 << (bit % 8)));
  return s;
}

// ---------------------------------------------------------------------------------------
// The transparency-dev/merkle vectors.

const std::string kVectorDir = std::string(LETHE_SOURCE_DIR) + "/tests/testdata/rfc9162";

// Every regular file under `dir`, recursively, in a stable order.
std::vector<fs::path> FilesUnder(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

nlohmann::json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  // Throws (and so fails the test, naming nothing) on a malformed file; the caller catches
  // to add the file name.
  return nlohmann::json::parse(buf.str());
}

// Decodes one base64 hash; a vector holding garbled base64 is a proof that cannot verify.
absl::StatusOr<std::string> Decode(const nlohmann::json& v) {
  if (v.is_null()) return std::string();
  return crypto::FromBase64(v.get<std::string>());
}

absl::StatusOr<std::vector<std::string>> DecodeProof(const nlohmann::json& v) {
  std::vector<std::string> proof;
  if (v.is_null()) return proof;  // Go's encoding/json writes an empty slice as null
  for (const auto& h : v) {
    absl::StatusOr<std::string> d = Decode(h);
    if (!d.ok()) return d.status();
    proof.push_back(*std::move(d));
  }
  return proof;
}

// The outcome of one vector: OK when it verifies. Decoding failures count as failures.
absl::Status RunInclusionVector(const nlohmann::json& j) {
  absl::StatusOr<std::string> leaf = Decode(j.at("leafHash"));
  absl::StatusOr<std::string> root = Decode(j.at("root"));
  absl::StatusOr<std::vector<std::string>> proof = DecodeProof(j.at("proof"));
  if (!leaf.ok()) return leaf.status();
  if (!root.ok()) return root.status();
  if (!proof.ok()) return proof.status();
  const uint64_t index = j.at("leafIdx").get<uint64_t>();
  const uint64_t size = j.at("treeSize").get<uint64_t>();
  absl::Status s = VerifyInclusion(index, size, *leaf, *proof, *root);
  // RootFromInclusionProof must agree with VerifyInclusion.
  absl::StatusOr<std::string> calculated = RootFromInclusionProof(index, size, *leaf, *proof);
  EXPECT_EQ(s.ok(), calculated.ok() && *calculated == *root) << s;
  return s;
}

absl::Status RunConsistencyVector(const nlohmann::json& j) {
  absl::StatusOr<std::string> root1 = Decode(j.at("root1"));
  absl::StatusOr<std::string> root2 = Decode(j.at("root2"));
  absl::StatusOr<std::vector<std::string>> proof = DecodeProof(j.at("proof"));
  if (!root1.ok()) return root1.status();
  if (!root2.ok()) return root2.status();
  if (!proof.ok()) return proof.status();
  return VerifyConsistency(j.at("size1").get<uint64_t>(), j.at("size2").get<uint64_t>(), *proof,
                           *root1, *root2);
}

// Runs every file under `subdir`; returns {files, files expected to verify}.
std::pair<int, int> RunVectors(const std::string& subdir,
                               absl::Status (*run)(const nlohmann::json&)) {
  int files = 0, happy = 0;
  for (const fs::path& path : FilesUnder(kVectorDir + "/" + subdir)) {
    SCOPED_TRACE(path.string());
    ++files;
    nlohmann::json j;
    try {
      j = ReadJson(path);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot parse " << path << ": " << e.what();
      continue;
    }
    const bool want_err = j.at("wantErr").get<bool>();
    happy += want_err ? 0 : 1;
    const absl::Status s = run(j);
    if (want_err) {
      EXPECT_FALSE(s.ok()) << path << " (" << j.value("desc", "") << ") verified but must not";
      // Malformed input or a mismatch; never anything else.
      EXPECT_TRUE(s.code() == absl::StatusCode::kInvalidArgument ||
                  s.code() == absl::StatusCode::kDataLoss ||
                  s.code() == absl::StatusCode::kOk)
          << path << ": " << s;
    } else {
      EXPECT_TRUE(s.ok()) << path << " (" << j.value("desc", "") << ") must verify: " << s;
    }
  }
  return {files, happy};
}

TEST(MerkleVectors, EveryInclusionVectorVerifiesExactlyWhenExpected) {
  const auto [files, happy] = RunVectors("inclusion", RunInclusionVector);
  // 98 files (5 happy paths, 1 single-entry match) in transparency-dev/merkle's testdata at
  // the time of copying: an empty or missing directory must not pass.
  EXPECT_GE(files, 98);
  EXPECT_GE(happy, 6);
}

TEST(MerkleVectors, EveryConsistencyVectorVerifiesExactlyWhenExpected) {
  const auto [files, happy] = RunVectors("consistency", RunConsistencyVector);
  EXPECT_GE(files, 98);  // 98 at the time of copying
  EXPECT_GE(happy, 6);
}

// The happy-path vectors all come from the RFC 6962 test tree of 8 leaves; the proofs we
// generate for it must be exactly theirs.
TEST(MerkleVectors, GeneratedProofsEqualTheHappyPathVectors) {
  const std::vector<std::string> leaves = ::lethe::testing::Rfc6962TestLeaves();
  MerkleTree tree;
  for (const std::string& l : leaves) tree.Append(LeafHash(l));
  int checked = 0;
  for (const fs::path& path : FilesUnder(kVectorDir)) {
    if (path.filename() != "happy-path.json") continue;
    SCOPED_TRACE(path.string());
    const nlohmann::json j = ReadJson(path);
    const auto want_proof = DecodeProof(j.at("proof"));
    ASSERT_TRUE(want_proof.ok());
    if (j.contains("leafIdx")) {
      const uint64_t index = j.at("leafIdx").get<uint64_t>();
      const uint64_t size = j.at("treeSize").get<uint64_t>();
      EXPECT_EQ(tree.Root(size), *Decode(j.at("root")));
      EXPECT_EQ(tree.LeafHashAt(index), *Decode(j.at("leafHash")));
      auto proof = tree.InclusionProof(index, size);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_EQ(Hex(*proof), Hex(*want_proof));
    } else {
      const uint64_t size1 = j.at("size1").get<uint64_t>();
      const uint64_t size2 = j.at("size2").get<uint64_t>();
      EXPECT_EQ(tree.Root(size1), *Decode(j.at("root1")));
      EXPECT_EQ(tree.Root(size2), *Decode(j.at("root2")));
      auto proof = tree.ConsistencyProof(size1, size2);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_EQ(Hex(*proof), Hex(*want_proof));
    }
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

// ---------------------------------------------------------------------------------------
// The hashes themselves: leaf and node hashing (RFC 9162 §2.1.1), and CompactRange's roots
// of the RFC 6962 test tree.

TEST(Merkle, LeafAndNodeHashesAreDomainSeparated) {
  const std::string a = crypto::Sha256("a"), b = crypto::Sha256("b");
  EXPECT_EQ(LeafHash("abc"), crypto::Sha256(std::string("\x00", 1) + "abc"));
  EXPECT_EQ(NodeHash(a, b), crypto::Sha256("\x01" + a + b));
  EXPECT_NE(NodeHash(a, b), NodeHash(b, a));
  EXPECT_NE(LeafHash(a + b), NodeHash(a, b));
}

TEST(Merkle, Rfc6962KnownAnswerRoots) {
  // The leaves of the RFC 6962 / transparency-dev test tree. Roots for sizes 1-3 and 5-8 are
  // the happy-path roots of tests/testdata/rfc9162 (inclusion/, consistency/); size 4
  // comes from an independent reference implementation.
  const std::vector<std::string> leaves = ::lethe::testing::Rfc6962TestLeaves();
  const std::vector<std::string> roots = {
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
  };
  ASSERT_EQ(leaves[7].size(), 16u);
  CompactRange range;
  for (size_t i = 0; i < leaves.size(); ++i) {
    range.Append(LeafHash(leaves[i]));
    EXPECT_EQ(crypto::Hex(range.Root()), roots[i]) << "size " << i + 1;
  }
  EXPECT_EQ(crypto::Hex(range.Root()),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
}

// ---------------------------------------------------------------------------------------
// MerkleTree against the reference.

void ExpectInclusionMatches(const ReferenceTree& ref, const MerkleTree& tree, uint64_t index,
                            uint64_t size, const std::string& root) {
  SCOPED_TRACE(::testing::Message() << "inclusion index " << index << " size " << size);
  absl::StatusOr<std::vector<std::string>> proof = tree.InclusionProof(index, size);
  ASSERT_TRUE(proof.ok()) << proof.status();
  const std::vector<std::string> want = ref.Path(index, size);
  ASSERT_EQ(Hex(*proof), Hex(want));
  EXPECT_TRUE(VerifyInclusion(index, size, ref.LeafHash(index), *proof, root).ok());
}

void ExpectConsistencyMatches(const ReferenceTree& ref, const MerkleTree& tree, uint64_t m,
                              uint64_t n, const std::string& root_m, const std::string& root_n) {
  SCOPED_TRACE(::testing::Message() << "consistency " << m << " -> " << n);
  absl::StatusOr<std::vector<std::string>> proof = tree.ConsistencyProof(m, n);
  ASSERT_TRUE(proof.ok()) << proof.status();
  ASSERT_EQ(Hex(*proof), Hex(ref.Proof(m, n)));
  const absl::Status s = VerifyConsistency(m, n, *proof, root_m, root_n);
  EXPECT_TRUE(s.ok()) << s;
}

// Every (index, size) and (size1, size2) pair up to 64 leaves.
TEST(MerkleTree, MatchesReferenceExhaustivelyForSmallTrees) {
  std::mt19937_64 rng(9162);
  const ReferenceTree ref(RandomLeaves(rng, 64));
  const MerkleTree tree = TreeOf(ref, 64);
  EXPECT_EQ(tree.Root(0), EmptyRoot());
  for (uint64_t n = 1; n <= 64; ++n) {
    const std::string root = ref.Root(n);
    ASSERT_EQ(crypto::Hex(tree.Root(n)), crypto::Hex(root)) << "size " << n;
    for (uint64_t i = 0; i < n; ++i) ExpectInclusionMatches(ref, tree, i, n, root);
    for (uint64_t m = 1; m <= n; ++m) ExpectConsistencyMatches(ref, tree, m, n, ref.Root(m), root);
  }
}

// Every size 1..1000, on a tree grown one leaf at a time and on a tree already holding all
// 1000 leaves (proofs at earlier sizes must ignore the later leaves).
TEST(MerkleTree, MatchesReferenceForEverySizeTo1000) {
  constexpr size_t kMax = 1000;
  std::mt19937_64 rng(20240917);
  const ReferenceTree ref(RandomLeaves(rng, kMax));
  const MerkleTree full = TreeOf(ref, kMax);
  MerkleTree grown;
  for (uint64_t n = 1; n <= kMax; ++n) {
    SCOPED_TRACE(::testing::Message() << "size " << n);
    grown.Append(ref.LeafHash(n - 1));
    ASSERT_EQ(grown.size(), n);
    ASSERT_EQ(grown.LeafHashAt(n - 1), ref.LeafHash(n - 1));
    const std::string root = ref.Root(n);
    ASSERT_EQ(crypto::Hex(grown.Root()), crypto::Hex(root));
    ASSERT_EQ(crypto::Hex(full.Root(n)), crypto::Hex(root));

    std::set<uint64_t> indices = {0, n - 1};
    while (indices.size() < std::min<uint64_t>(n, 5)) indices.insert(rng() % n);
    for (uint64_t i : indices) {
      ExpectInclusionMatches(ref, grown, i, n, root);
      ExpectInclusionMatches(ref, full, i, n, root);
    }

    std::set<uint64_t> sizes = {1, n};
    while (sizes.size() < std::min<uint64_t>(n, 5)) sizes.insert(1 + rng() % n);
    for (uint64_t m : sizes) {
      const std::string root_m = ref.Root(m);
      ASSERT_EQ(crypto::Hex(grown.Root(m)), crypto::Hex(root_m)) << "prefix " << m;
      ExpectConsistencyMatches(ref, grown, m, n, root_m, root);
      ExpectConsistencyMatches(ref, full, m, n, root_m, root);
    }
    if (HasFatalFailure()) return;
  }
}

// At size n: the root, and `probes` random leaves, prefix roots, inclusion and consistency
// proofs of `evicting`, each as `full` (which keeps everything) gives it.
void ExpectAnswersAsTheFullTree(const MerkleTree& evicting, const MerkleTree& full, const ReferenceTree& ref,
                                uint64_t n, std::mt19937_64& rng, int probes) {
  ASSERT_OK_AND_ASSIGN(const std::string root, evicting.RootAt(n));
  ASSERT_EQ(crypto::Hex(root), crypto::Hex(full.Root(n)));
  for (int k = 0; k < probes; ++k) {
    const uint64_t i = rng() % n;
    ASSERT_OK_AND_ASSIGN(const std::string leaf, evicting.Leaf(i));
    EXPECT_EQ(leaf, ref.LeafHash(i));
    const uint64_t m = 1 + rng() % n;
    ASSERT_OK_AND_ASSIGN(const std::string root_m, evicting.RootAt(m));
    ASSERT_EQ(crypto::Hex(root_m), crypto::Hex(full.Root(m))) << "prefix " << m;
    ASSERT_OK_AND_ASSIGN(auto inclusion, evicting.InclusionProof(i, n));
    EXPECT_EQ(Hex(inclusion), Hex(*full.InclusionProof(i, n)));
    ASSERT_OK_AND_ASSIGN(auto consistency, evicting.ConsistencyProof(m, n));
    EXPECT_EQ(Hex(consistency), Hex(*full.ConsistencyProof(m, n)));
  }
}

// An evicting tree (a TileReader, Evict) answers every root, leaf and proof as the tree that
// keeps everything, whatever was evicted and whatever its tile cache holds, and really reads
// tiles back; it keeps about 2 / kTileLeaves nodes per leaf.
TEST(MerkleTree, AnEvictingTreeAnswersAsTheTreeThatKeepsEverything) {
  constexpr uint64_t kMax = 700;  // ten tiles and a part
  std::mt19937_64 rng(61);
  const ReferenceTree ref(RandomLeaves(rng, kMax));
  std::vector<std::string> leaves;
  uint64_t reads = 0;
  MerkleTree::TileReader reader = [&](uint64_t first, std::string* out) {
    ++reads;
    EXPECT_EQ(first % MerkleTree::kTileLeaves, 0u);
    out->clear();
    for (uint64_t i = first; i < first + MerkleTree::kTileLeaves; ++i) *out += leaves.at(i);
    return absl::OkStatus();
  };
  MerkleTree evicting(reader, /*cache_tiles=*/2);
  MerkleTree full;
  for (uint64_t n = 1; n <= kMax; ++n) {
    SCOPED_TRACE(::testing::Message() << "size " << n);
    leaves.push_back(ref.LeafHash(n - 1));
    evicting.Append(ref.LeafHash(n - 1));
    full.Append(ref.LeafHash(n - 1));
    // Evict everything some of the time, lag behind the others (as the ledger does while
    // entries are not yet durable).
    evicting.Evict(n % 3 == 0 ? n : n - std::min<uint64_t>(n, rng() % 100));
    if (n % 7 != 0 && n != kMax) continue;
    ExpectAnswersAsTheFullTree(evicting, full, ref, n, rng, 4);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(reads, 100u);
  evicting.Evict(kMax);
  const uint64_t tiles = kMax / MerkleTree::kTileLeaves;
  EXPECT_LE(evicting.NodesHeld(), 2 * tiles + 2 * (kMax - tiles * MerkleTree::kTileLeaves));
  EXPECT_EQ(full.NodesHeld(), 2 * kMax - std::popcount(kMax));
  EXPECT_EQ(evicting.RootAt(kMax + 1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(evicting.Leaf(kMax).status().code(), absl::StatusCode::kOutOfRange);
}

// What a reader gives back is checked against the node the tree kept for the tile: a changed
// leaf hash is kDataLoss for every answer that needs it, and a reader's error is returned.
TEST(MerkleTree, ATileReadBackThatDoesNotHashToItsNodeIsDataLoss) {
  std::mt19937_64 rng(62);
  const ReferenceTree ref(RandomLeaves(rng, 200));
  std::vector<std::string> leaves;
  absl::Status fail;
  MerkleTree tree([&](uint64_t first, std::string* out) {
    if (!fail.ok()) return fail;
    out->clear();
    for (uint64_t i = first; i < first + MerkleTree::kTileLeaves; ++i) *out += leaves[i];
    return absl::OkStatus();
  }, /*cache_tiles=*/1);
  for (uint64_t i = 0; i < 200; ++i) {
    leaves.push_back(ref.LeafHash(i));
    tree.Append(ref.LeafHash(i));
  }
  tree.Evict(200);
  leaves[70] = FlipBit(leaves[70], 3);  // in the second tile
  for (const absl::Status& s :
       {tree.Leaf(70).status(), tree.Leaf(64).status(), tree.RootAt(100).status(),
        tree.InclusionProof(65, 200).status(), tree.ConsistencyProof(66, 200).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_THAT(s.message(), HasSubstr("leaves 64 to 127 do not hash to the tree's node"));
  }
  // Other tiles still answer, and so does the root, which needs no leaf read back.
  ASSERT_OK_AND_ASSIGN(const std::string leaf, tree.Leaf(3));
  EXPECT_EQ(leaf, ref.LeafHash(3));
  ASSERT_OK_AND_ASSIGN(const std::string root, tree.RootAt(200));
  EXPECT_EQ(root, ref.Root(200));
  fail = absl::UnavailableError("disk gone");
  EXPECT_EQ(tree.Leaf(130).status(), fail);
}

// With an UpperStore the tree evicts one tier up as well: every answer is still the full
// tree's, the upper tiles really are read back, memory keeps about 2 nodes per 4,096 leaves,
// and a level-6 node changed in the store is kDataLoss for whatever needs it.
TEST(MerkleTree, AnEvictingTreeWithAnUpperStoreAnswersAsTheFullTreeAndChecksWhatItReadsBack) {
  constexpr uint64_t kMax = 3 * (uint64_t{1} << MerkleTree::kUpperLevel) + 700;
  std::mt19937_64 rng(63);
  const ReferenceTree ref(RandomLeaves(rng, kMax));
  std::vector<std::string> leaves;
  std::string upper;  // the store: level-6 nodes, 32 bytes each
  uint64_t upper_reads = 0;
  MerkleTree evicting(
      [&](uint64_t first, std::string* out) {
        out->clear();
        for (uint64_t i = first; i < first + MerkleTree::kTileLeaves; ++i) *out += leaves.at(i);
        return absl::OkStatus();
      },
      /*cache_tiles=*/2,
      MerkleTree::UpperStore{[&](std::string_view nodes) { upper += nodes; },
                             [&](uint64_t first, std::string* out) {
                               ++upper_reads;
                               EXPECT_EQ(first % MerkleTree::kTileLeaves, 0u);
                               *out = upper.substr(first * 32, MerkleTree::kTileLeaves * 32);
                               return absl::OkStatus();
                             },
                             /*cache_tiles=*/1});
  MerkleTree full;
  for (uint64_t n = 1; n <= kMax; ++n) {
    leaves.push_back(ref.LeafHash(n - 1));
    evicting.Append(ref.LeafHash(n - 1));
    full.Append(ref.LeafHash(n - 1));
    evicting.Evict(n % 5 == 0 ? n : n - std::min<uint64_t>(n, rng() % 300));
    if (n % 997 != 0 && n != kMax) continue;
    SCOPED_TRACE(::testing::Message() << "size " << n);
    ExpectAnswersAsTheFullTree(evicting, full, ref, n, rng, 8);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(upper_reads, 10u);
  evicting.Evict(kMax);
  EXPECT_EQ(upper.size(), (kMax >> MerkleTree::kUpperLevel << MerkleTree::kTileHeight) * 32);
  // What is held: the levels from kUpperLevel up, and below them only the last partial group.
  EXPECT_LE(evicting.NodesHeld(), 2 * (kMax >> MerkleTree::kUpperLevel) + 2 * MerkleTree::kTileLeaves +
                                      2 * ((kMax % (uint64_t{1} << MerkleTree::kUpperLevel)) >> MerkleTree::kTileHeight) +
                                      2 * (kMax % MerkleTree::kTileLeaves));
  // A level-6 node of the second group, changed in the store (and out of the caches: other
  // groups and tiles read since).
  ASSERT_OK(evicting.Leaf(5).status());
  ASSERT_OK(evicting.Leaf(2 * 4096 + 5).status());
  const uint64_t node = MerkleTree::kTileLeaves + 5;
  upper[node * 32] ^= 0x10;
  const uint64_t leaf = node << MerkleTree::kTileHeight;  // a leaf under it
  for (const absl::Status& s : {evicting.Leaf(leaf + 3).status(), evicting.InclusionProof(leaf, kMax).status(),
                                evicting.RootAt(leaf + 100).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_THAT(s.message(), HasSubstr("level-6 nodes read back for leaves 4096 to 8191 do not hash"));
  }
  ASSERT_OK_AND_ASSIGN(const std::string root, evicting.RootAt(kMax));  // needs no group read back
  EXPECT_EQ(root, ref.Root(kMax));
}

TEST(MerkleTree, EmptyTree) {
  EXPECT_EQ(crypto::Hex(EmptyRoot()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");  // SHA-256("")
  EXPECT_EQ(CompactRange().Root(), EmptyRoot());
  const MerkleTree tree;
  EXPECT_EQ(tree.size(), 0u);
  EXPECT_EQ(tree.Root(), EmptyRoot());
  EXPECT_EQ(tree.Root(0), EmptyRoot());
  EXPECT_EQ(tree.InclusionProof(0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.ConsistencyProof(0, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MerkleTree, AgreesWithCompactRange) {
  std::mt19937_64 rng(7);
  MerkleTree tree;
  CompactRange range;
  for (int i = 0; i < 3000; ++i) {
    const std::string h = LeafHash(std::to_string(rng()));
    tree.Append(h);
    range.Append(h);
    ASSERT_EQ(tree.Root(), range.Root()) << "size " << tree.size();
  }
}

TEST(MerkleTree, OutOfRangeArguments) {
  std::mt19937_64 rng(1);
  const ReferenceTree ref(RandomLeaves(rng, 10));
  const MerkleTree tree = TreeOf(ref, 10);
  constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
  const auto code = [](const auto& s) { return s.status().code(); };

  EXPECT_EQ(code(tree.InclusionProof(10, 10)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(tree.InclusionProof(5, 5)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(tree.InclusionProof(0, 0)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(tree.InclusionProof(kMaxU64, 10)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(tree.InclusionProof(3, 11)), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(tree.InclusionProof(0, kMaxU64)), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(tree.InclusionProof(3, 11).status().message(), HasSubstr("11"));
  EXPECT_TRUE(tree.InclusionProof(9, 10).ok());

  EXPECT_EQ(code(tree.ConsistencyProof(0, 5)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(tree.ConsistencyProof(0, 0)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(tree.ConsistencyProof(6, 5)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(tree.ConsistencyProof(3, 11)), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(tree.ConsistencyProof(11, 11)), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(tree.ConsistencyProof(1, kMaxU64)), absl::StatusCode::kOutOfRange);
  auto same = tree.ConsistencyProof(7, 7);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->empty());
  EXPECT_TRUE(tree.ConsistencyProof(10, 10).ok());
}

TEST(MerkleTreeDeathTest, PreconditionViolationsAbort) {
  MerkleTree tree;
  tree.Append(LeafHash("a"));
  EXPECT_DEATH(tree.Append("short"), "not 32 bytes");
  EXPECT_DEATH(tree.Root(2), "size beyond the tree");
  EXPECT_DEATH(tree.LeafHashAt(1), "index out of range");
}

// ---------------------------------------------------------------------------------------
// Hostile inclusion proofs.

TEST(VerifyInclusion, EveryTamperedProofFails) {
  std::mt19937_64 rng(42);
  constexpr uint64_t kMax = 70;
  const ReferenceTree ref(RandomLeaves(rng, kMax + 1));
  const MerkleTree tree = TreeOf(ref, kMax + 1);
  const std::string other = LeafHash("not in the tree");
  int tampered = 0;
  for (uint64_t n = 1; n <= kMax; ++n) {
    const std::string root = tree.Root(n);
    for (uint64_t i = 0; i < n; ++i) {
      SCOPED_TRACE(::testing::Message() << "index " << i << " size " << n);
      const std::string& leaf = ref.LeafHash(i);
      const std::vector<std::string> proof = *tree.InclusionProof(i, n);
      ASSERT_TRUE(VerifyInclusion(i, n, leaf, proof, root).ok());

      // One flipped bit anywhere in any proof hash: a different root.
      for (size_t k = 0; k < proof.size(); ++k) {
        std::vector<std::string> bad = proof;
        bad[k] = FlipBit(bad[k], rng() % 256);
        const absl::Status s = VerifyInclusion(i, n, leaf, bad, root);
        EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "proof[" << k << "]";
        EXPECT_THAT(s.message(),
                    HasSubstr("inclusion proof does not verify: calculated root "));
        EXPECT_THAT(s.message(), HasSubstr("expected " + crypto::Base64(root)));
        ++tampered;
      }
      // An extra hash at either end, or one missing: the wrong length.
      std::vector<std::string> longer = proof;
      longer.push_back(other);
      EXPECT_EQ(VerifyInclusion(i, n, leaf, longer, root).code(),
                absl::StatusCode::kInvalidArgument);
      longer = proof;
      longer.insert(longer.begin(), other);
      EXPECT_EQ(VerifyInclusion(i, n, leaf, longer, root).code(),
                absl::StatusCode::kInvalidArgument);
      if (!proof.empty()) {
        std::vector<std::string> shorter(proof.begin(), proof.end() - 1);
        EXPECT_EQ(VerifyInclusion(i, n, leaf, shorter, root).code(),
                  absl::StatusCode::kInvalidArgument);
        shorter.assign(proof.begin() + 1, proof.end());
        EXPECT_EQ(VerifyInclusion(i, n, leaf, shorter, root).code(),
                  absl::StatusCode::kInvalidArgument);
      }
      // Another leaf, or a flipped bit in the leaf or the root.
      EXPECT_EQ(VerifyInclusion(i, n, other, proof, root).code(), absl::StatusCode::kDataLoss);
      EXPECT_EQ(VerifyInclusion(i, n, FlipBit(leaf, rng() % 256), proof, root).code(),
                absl::StatusCode::kDataLoss);
      EXPECT_EQ(VerifyInclusion(i, n, leaf, proof, FlipBit(root, rng() % 256)).code(),
                absl::StatusCode::kDataLoss);
      EXPECT_FALSE(VerifyInclusion(i, n, leaf, proof, tree.Root(n + 1)).ok());
      if (n > 1) {
        EXPECT_FALSE(VerifyInclusion(i, n, leaf, proof, tree.Root(n - 1)).ok());
      }

      // The same proof claimed for index ± 1.
      if (i + 1 < n) {
        EXPECT_FALSE(VerifyInclusion(i + 1, n, leaf, proof, root).ok());
      }
      if (i > 0) {
        EXPECT_FALSE(VerifyInclusion(i - 1, n, leaf, proof, root).ok());
      }
      EXPECT_EQ(VerifyInclusion(n, n, leaf, proof, root).code(),
                absl::StatusCode::kInvalidArgument);

      // The same proof claimed for size ± 1, against the root of that size: always fails.
      // Against the original root it fails unless both sizes give leaf i the very same path
      // shape (e.g. leaf 0 in sizes 3 and 4): an inclusion proof binds the size only through
      // the root, which is why a root must always be taken together with its size.
      for (uint64_t n2 : {n - 1, n + 1}) {
        if (n2 <= i) {
          EXPECT_EQ(VerifyInclusion(i, n2, leaf, proof, root).code(),
                    absl::StatusCode::kInvalidArgument);
          continue;
        }
        EXPECT_FALSE(VerifyInclusion(i, n2, leaf, proof, tree.Root(n2)).ok()) << "size " << n2;
        const bool same_shape = ref.PathSides(i, n2) == ref.PathSides(i, n);
        EXPECT_EQ(VerifyInclusion(i, n2, leaf, proof, root).ok(), same_shape) << "size " << n2;
      }
    }
  }
  EXPECT_GT(tampered, 10000);
}

TEST(VerifyInclusion, MalformedInputIsInvalidArgument) {
  MerkleTree tree;
  for (int i = 0; i < 5; ++i) tree.Append(LeafHash(std::to_string(i)));
  const std::string leaf = tree.LeafHashAt(2), root = tree.Root();
  const std::vector<std::string> proof = *tree.InclusionProof(2, 5);
  ASSERT_TRUE(VerifyInclusion(2, 5, leaf, proof, root).ok());
  const auto code = [](const absl::Status& s) { return s.code(); };
  constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();

  EXPECT_EQ(code(VerifyInclusion(5, 5, leaf, proof, root)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyInclusion(0, 0, leaf, {}, root)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyInclusion(kMaxU64, 5, leaf, proof, root)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyInclusion(2, 5, leaf.substr(1), proof, root)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyInclusion(2, 5, leaf + "x", proof, root)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyInclusion(2, 5, "", proof, root)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyInclusion(2, 5, leaf, proof, "")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyInclusion(2, 5, leaf, proof, root.substr(0, 31))),
            absl::StatusCode::kInvalidArgument);
  for (size_t k = 0; k < proof.size(); ++k) {
    for (std::string bad_hash : {proof[k].substr(1), proof[k] + '\0', std::string()}) {
      std::vector<std::string> bad = proof;
      bad[k] = bad_hash;
      const absl::Status s = VerifyInclusion(2, 5, leaf, bad, root);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
      EXPECT_THAT(s.message(), HasSubstr("[" + std::to_string(k) + "]"));
      EXPECT_FALSE(RootFromInclusionProof(2, 5, leaf, bad).ok());
    }
  }
  auto calculated = RootFromInclusionProof(2, 5, leaf, proof);
  ASSERT_TRUE(calculated.ok());
  EXPECT_EQ(*calculated, root);
}

// Sizes near 2^64 must neither overflow nor crash; the proofs are of the right length but
// made up, so they fail to verify with kDataLoss.
TEST(VerifyInclusion, HugeSizesAreHandled) {
  constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
  const std::string h = LeafHash("x");
  // Leaf 0 of 2^64-1 leaves: 64 siblings, all on its right.
  EXPECT_EQ(VerifyInclusion(0, kMaxU64, h, std::vector<std::string>(64, h), h).code(),
            absl::StatusCode::kDataLoss);
  // The last leaf: 63 left siblings along the border.
  EXPECT_EQ(VerifyInclusion(kMaxU64 - 1, kMaxU64, h, std::vector<std::string>(63, h), h).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(VerifyInclusion(kMaxU64 - 1, kMaxU64, h, std::vector<std::string>(64, h), h).code(),
            absl::StatusCode::kInvalidArgument);
  // From the perfect tree of 2^63 leaves: one hash, the new right half.
  EXPECT_EQ(VerifyConsistency(uint64_t{1} << 63, kMaxU64, std::vector<std::string>(1, h), h, h)
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(VerifyConsistency(kMaxU64 - 1, kMaxU64, std::vector<std::string>(64, h), h, h).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(VerifyConsistency(1, kMaxU64, std::vector<std::string>(3, h), h, h).code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------
// Hostile consistency proofs.

TEST(VerifyConsistency, EveryTamperedProofFails) {
  std::mt19937_64 rng(43);
  constexpr uint64_t kMax = 70;
  const ReferenceTree ref(RandomLeaves(rng, kMax + 1));
  const MerkleTree tree = TreeOf(ref, kMax + 1);
  const std::string other = LeafHash("not in the tree");
  int tampered = 0, shape_coincidences = 0;
  for (uint64_t n = 2; n <= kMax; ++n) {
    const std::string root_n = tree.Root(n);
    for (uint64_t m = 1; m < n; ++m) {
      SCOPED_TRACE(::testing::Message() << "consistency " << m << " -> " << n);
      const std::string root_m = tree.Root(m);
      const std::vector<std::string> proof = *tree.ConsistencyProof(m, n);
      ASSERT_TRUE(VerifyConsistency(m, n, proof, root_m, root_n).ok());

      for (size_t k = 0; k < proof.size(); ++k) {
        std::vector<std::string> bad = proof;
        bad[k] = FlipBit(bad[k], rng() % 256);
        const absl::Status s = VerifyConsistency(m, n, bad, root_m, root_n);
        EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "proof[" << k << "]";
        EXPECT_THAT(s.message(), HasSubstr("consistency proof does not verify: calculated root"));
        ++tampered;
      }
      std::vector<std::string> longer = proof;
      longer.push_back(other);
      EXPECT_EQ(VerifyConsistency(m, n, longer, root_m, root_n).code(),
                absl::StatusCode::kInvalidArgument);
      longer = proof;
      longer.insert(longer.begin(), root_m);
      EXPECT_EQ(VerifyConsistency(m, n, longer, root_m, root_n).code(),
                absl::StatusCode::kInvalidArgument);
      std::vector<std::string> shorter(proof.begin(), proof.end() - 1);
      EXPECT_EQ(VerifyConsistency(m, n, shorter, root_m, root_n).code(),
                absl::StatusCode::kInvalidArgument);
      shorter.assign(proof.begin() + 1, proof.end());
      EXPECT_EQ(VerifyConsistency(m, n, shorter, root_m, root_n).code(),
                absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(VerifyConsistency(m, n, {}, root_m, root_n).code(),
                absl::StatusCode::kInvalidArgument);

      // Wrong roots, each named in the error.
      absl::Status s = VerifyConsistency(m, n, proof, FlipBit(root_m, rng() % 256), root_n);
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
      // When size1 is a power of two root1 is the seed of both chains: either root can be
      // the first to disagree.
      if ((m & (m - 1)) != 0) {
        EXPECT_THAT(s.message(), HasSubstr("calculated root1 "));
      }
      s = VerifyConsistency(m, n, proof, root_m, FlipBit(root_n, rng() % 256));
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
      EXPECT_THAT(s.message(), HasSubstr("calculated root2 "));
      EXPECT_THAT(s.message(), HasSubstr(crypto::Base64(root_n)));
      EXPECT_FALSE(VerifyConsistency(m, n, proof, root_n, root_m).ok());  // swapped
      EXPECT_FALSE(VerifyConsistency(m, n, proof, root_m, tree.Root(n + 1)).ok());
      EXPECT_FALSE(VerifyConsistency(m, n, proof, tree.Root(m + 1), root_n).ok());

      // The same proof claimed for size1 ± 1 or size2 ± 1, against the roots of the claimed
      // sizes: always fails. Against the original roots, size1 ± 1 always fails too, and
      // size2 ± 1 fails unless both size pairs give the proof the very same shape (e.g.
      // 67 -> 70 and 67 -> 69): like an inclusion proof, a consistency proof binds size2 only
      // through root2. The shape comes from the reference SUBPROOF.
      for (auto [m2, n2] : {std::pair{m - 1, n}, std::pair{m + 1, n}, std::pair{m, n - 1},
                            std::pair{m, n + 1}}) {
        if (m2 == 0 || m2 > n2) continue;
        SCOPED_TRACE(::testing::Message() << "claimed as " << m2 << " -> " << n2);
        EXPECT_FALSE(VerifyConsistency(m2, n2, proof, tree.Root(m2), tree.Root(n2)).ok());
        const bool ok = VerifyConsistency(m2, n2, proof, root_m, root_n).ok();
        if (m2 != m) {
          EXPECT_FALSE(ok);
        } else {
          const bool same_shape = m2 < n2 && ref.ProofShape(m2, n2) == ref.ProofShape(m, n);
          EXPECT_EQ(ok, same_shape);
          shape_coincidences += same_shape ? 1 : 0;
        }
      }
    }
  }
  EXPECT_GT(tampered, 10000);
  // The coincidences exist (for size2 ± 1 they are common), so the check above has teeth
  // in both directions.
  EXPECT_GT(shape_coincidences, 0);
}

TEST(VerifyConsistency, EdgeCases) {
  MerkleTree tree;
  for (int i = 0; i < 9; ++i) tree.Append(LeafHash(std::to_string(i)));
  const std::string r1 = tree.Root(1), r4 = tree.Root(4), r9 = tree.Root(9);
  const auto code = [](const absl::Status& s) { return s.code(); };

  // size1 == size2: an empty proof and equal roots.
  EXPECT_TRUE(VerifyConsistency(4, 4, {}, r4, r4).ok());
  EXPECT_EQ(code(VerifyConsistency(4, 4, {r4}, r4, r4)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyConsistency(4, 4, {}, r4, r9)), absl::StatusCode::kDataLoss);
  EXPECT_THAT(VerifyConsistency(4, 4, {}, r4, r9).message(), HasSubstr("root2"));
  // size1 == 0: nothing to prove; the old root must be the empty tree's.
  EXPECT_TRUE(VerifyConsistency(0, 9, {}, EmptyRoot(), r9).ok());
  EXPECT_TRUE(VerifyConsistency(0, 0, {}, EmptyRoot(), EmptyRoot()).ok());
  EXPECT_EQ(code(VerifyConsistency(0, 9, {r1}, EmptyRoot(), r9)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyConsistency(0, 9, {}, r1, r9)), absl::StatusCode::kDataLoss);
  EXPECT_EQ(code(VerifyConsistency(0, 9, {}, EmptyRoot(), "short")),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyConsistency(0, 0, {}, r1, r1)), absl::StatusCode::kDataLoss);
  // size1 > size2.
  EXPECT_EQ(code(VerifyConsistency(9, 4, {}, r9, r4)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyConsistency(1, 0, {}, r1, EmptyRoot())),
            absl::StatusCode::kInvalidArgument);
  // Malformed hashes.
  const std::vector<std::string> proof = *tree.ConsistencyProof(4, 9);
  ASSERT_TRUE(VerifyConsistency(4, 9, proof, r4, r9).ok());
  EXPECT_EQ(code(VerifyConsistency(4, 9, proof, r4.substr(1), r9)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(VerifyConsistency(4, 9, proof, r4, r9 + "x")),
            absl::StatusCode::kInvalidArgument);
  for (size_t k = 0; k < proof.size(); ++k) {
    std::vector<std::string> bad = proof;
    bad[k].pop_back();
    const absl::Status s = VerifyConsistency(4, 9, bad, r4, r9);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr("[" + std::to_string(k) + "]"));
  }
}

}  // namespace
}  // namespace lethe::ledger
