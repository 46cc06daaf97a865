#include "s3/xml.h"

#include <expat.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace lethe::s3 {
namespace {

constexpr int kMaxDepth = 16;
constexpr size_t kMaxElements = 200'000;
constexpr size_t kMaxText = 64 * 1024;

// An element: its local name (any namespace prefix dropped), its text and its children.
struct Node {
  std::string name;
  std::string text;
  std::vector<std::unique_ptr<Node>> children;
  const Node* Child(std::string_view n) const {
    for (const auto& c : children)
      if (c->name == n) return c.get();
    return nullptr;
  }
  std::string ChildText(std::string_view n) const {
    const Node* c = Child(n);
    return c == nullptr ? std::string() : c->text;
  }
};

struct Reader {
  XML_Parser parser = nullptr;
  Node root;  // a synthetic parent of the document element
  std::vector<Node*> stack{&root};
  size_t elements = 0;
  std::string error;

  void Fail(std::string why) {
    if (error.empty()) error = std::move(why);
    XML_StopParser(parser, XML_FALSE);
  }
};

std::string_view LocalName(const char* name) {
  // With namespace processing, expat joins URI and local name with '\x1f'.
  std::string_view n(name);
  const size_t sep = n.rfind('\x1f');
  return sep == std::string_view::npos ? n : n.substr(sep + 1);
}

void XMLCALL Start(void* data, const char* name, const char** /*attrs*/) {
  auto* r = static_cast<Reader*>(data);
  if (static_cast<int>(r->stack.size()) > kMaxDepth) return r->Fail("nested more than 16 levels deep");
  if (++r->elements > kMaxElements) return r->Fail("more than 200000 elements");
  auto node = std::make_unique<Node>();
  node->name = std::string(LocalName(name));
  Node* raw = node.get();
  r->stack.back()->children.push_back(std::move(node));
  r->stack.push_back(raw);
}

void XMLCALL End(void* data, const char* /*name*/) {
  auto* r = static_cast<Reader*>(data);
  if (r->stack.size() > 1) r->stack.pop_back();
}

void XMLCALL Text(void* data, const char* s, int len) {
  auto* r = static_cast<Reader*>(data);
  Node* n = r->stack.back();
  if (n->text.size() + static_cast<size_t>(len) > kMaxText) return r->Fail("an element holds over 64 KiB of text");
  n->text.append(s, static_cast<size_t>(len));
}

void XMLCALL Doctype(void* data, const XML_Char*, const XML_Char*, const XML_Char*, int) {
  static_cast<Reader*>(data)->Fail("it declares a document type");
}

// The document element, or why the body is not one well-formed XML document.
absl::StatusOr<std::unique_ptr<Node>> Read(std::string_view xml) {
  if (xml.size() > static_cast<size_t>(INT32_MAX)) return absl::DataLossError("S3 answer too large");
  Reader r;
  r.parser = XML_ParserCreateNS(nullptr, '\x1f');
  if (r.parser == nullptr) return absl::ResourceExhaustedError("XML parser: out of memory");
  std::unique_ptr<std::remove_pointer_t<XML_Parser>, decltype(&XML_ParserFree)> guard(r.parser, &XML_ParserFree);
  XML_SetUserData(r.parser, &r);
  XML_SetElementHandler(r.parser, Start, End);
  XML_SetCharacterDataHandler(r.parser, Text);
  XML_SetStartDoctypeDeclHandler(r.parser, Doctype);
  const XML_Status st = XML_Parse(r.parser, xml.data(), static_cast<int>(xml.size()), XML_TRUE);
  if (!r.error.empty()) return absl::DataLossError("S3 answer refused: " + r.error);
  if (st != XML_STATUS_OK)
    return absl::DataLossError(std::string("S3 answer is not well-formed XML: ") +
                               XML_ErrorString(XML_GetErrorCode(r.parser)));
  if (r.root.children.size() != 1) return absl::DataLossError("S3 answer holds no XML document");
  return std::move(r.root.children.front());
}

absl::Status Expect(const Node& doc, std::string_view name) {
  if (doc.name == name) return absl::OkStatus();
  return absl::DataLossError("S3 answer is a " + doc.name.substr(0, 40) + ", not a " + std::string(name));
}

}  // namespace

absl::StatusOr<ObjectPage> ParseObjectPage(std::string_view xml) {
  auto doc = Read(xml);
  if (!doc.ok()) return doc.status();
  if (auto st = Expect(**doc, "ListBucketResult"); !st.ok()) return st;
  ObjectPage page;
  for (const auto& c : (*doc)->children) {
    if (c->name != "Contents") continue;
    ObjectEntry e;
    e.key = c->ChildText("Key");
    e.etag = c->ChildText("ETag");
    if (const std::string size = c->ChildText("Size"); !size.empty() && !absl::SimpleAtoi(size, &e.size))
      return absl::DataLossError("S3 listing: an object's Size is not a number");
    if (e.key.empty()) return absl::DataLossError("S3 listing: an object without a Key");
    page.objects.push_back(std::move(e));
  }
  page.truncated = (*doc)->ChildText("IsTruncated") == "true";
  page.next_token = (*doc)->ChildText("NextContinuationToken");
  if (page.truncated && page.next_token.empty())
    return absl::DataLossError("S3 listing: truncated without a NextContinuationToken");
  return page;
}

absl::StatusOr<VersionPage> ParseVersionPage(std::string_view xml) {
  auto doc = Read(xml);
  if (!doc.ok()) return doc.status();
  if (auto st = Expect(**doc, "ListVersionsResult"); !st.ok()) return st;
  VersionPage page;
  for (const auto& c : (*doc)->children) {
    if (c->name != "Version" && c->name != "DeleteMarker") continue;
    VersionEntry e;
    e.key = c->ChildText("Key");
    e.version_id = c->ChildText("VersionId");
    e.latest = c->ChildText("IsLatest") == "true";
    e.delete_marker = c->name == "DeleteMarker";
    if (e.key.empty() || e.version_id.empty())
      return absl::DataLossError("S3 version listing: an entry without a Key or VersionId");
    page.versions.push_back(std::move(e));
  }
  page.truncated = (*doc)->ChildText("IsTruncated") == "true";
  page.next_key_marker = (*doc)->ChildText("NextKeyMarker");
  page.next_version_id_marker = (*doc)->ChildText("NextVersionIdMarker");
  if (page.truncated && page.next_key_marker.empty())
    return absl::DataLossError("S3 version listing: truncated without a NextKeyMarker");
  return page;
}

absl::StatusOr<Versioning> ParseVersioning(std::string_view xml) {
  auto doc = Read(xml);
  if (!doc.ok()) return doc.status();
  if ((*doc)->name != "VersioningConfiguration") return Versioning::kUnsupported;
  const std::string status = (*doc)->ChildText("Status");
  if (status.empty()) return Versioning::kNever;
  if (status == "Enabled") return Versioning::kEnabled;
  if (status == "Suspended") return Versioning::kSuspended;
  return absl::DataLossError("S3 versioning status is neither Enabled nor Suspended");
}

std::string ParseErrorCode(std::string_view xml) {
  auto doc = Read(xml);
  if (!doc.ok() || (*doc)->name != "Error") return "";
  const std::string code = (*doc)->ChildText("Code");
  if (code.empty() || code.size() > 64) return "";
  for (char c : code)
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.') return "";
  return code;
}

}  // namespace lethe::s3
