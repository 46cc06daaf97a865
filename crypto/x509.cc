#include "crypto/x509.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file_system.h"
#include "base/status.h"
#include "crypto/crypto.h"
#include "crypto/openssl_ptr.h"
#include "crypto/secret.h"

namespace lethe::crypto {
namespace {

using X509Ptr = ossl::X509Ptr;
using PkeyPtr = ossl::Pkey;
using BioPtr = ossl::Bio;

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<X509Ptr> ParseCert(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  return cert;
}

absl::StatusOr<PkeyPtr> ParseKey(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM private key");
  }
  return key;
}

std::string CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

SecretBytes KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  SecretBytes pem(std::string(data, static_cast<size_t>(n)));
  OPENSSL_cleanse(data, static_cast<size_t>(n));
  return pem;
}

absl::StatusOr<PkeyPtr> NewKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return absl::InternalError("cannot generate a P-256 key: " + OpenSslError());
  return key;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr)
    return absl::InvalidArgumentError(
        absl::StrCat("bad certificate extension ", OBJ_nid2sn(nid), ": ", OpenSslError()));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return absl::InternalError("cannot add certificate extension: " + OpenSslError());
  return absl::OkStatus();
}

// A certificate for `key`, named `cn`, issued by `issuer` (nullptr: self-signed) and signed
// with `issuer_key`; `extensions` are (nid, OpenSSL config value) pairs.
absl::StatusOr<X509Ptr> Issue(EVP_PKEY* key, const std::string& cn, X509* issuer,
                              EVP_PKEY* issuer_key, absl::Duration lifetime,
                              const std::vector<std::pair<int, std::string>>& extensions) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);  // v3
  // A random positive 127-bit serial.
  std::string serial = RandomBytes(16);
  serial[0] = static_cast<char>(serial[0] & 0x7f);
  BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(serial.data()), 16, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  // Valid from an hour ago, so that a clock slightly behind does not reject a fresh cert.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), absl::ToInt64Seconds(lifetime));
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Lethe"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509* iss = issuer ? issuer : cert.get();
  for (const auto& [nid, value] : extensions) LETHE_RETURN_IF_ERROR(AddExtension(cert.get(), iss, nid, value));
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0)
    return absl::InternalError("cannot sign certificate: " + OpenSslError());
  return cert;
}

struct LoadedCa {
  X509Ptr cert;
  PkeyPtr key;
  std::string trust_domain;
};

absl::StatusOr<LoadedCa> LoadCa(const std::string& dir) {
  const std::string crt_path = dir + "/ca.crt";
  const std::string key_path = dir + "/ca.key";
  LETHE_ASSIGN_OR_RETURN(std::string crt_pem, ReadFile(crt_path));
  LETHE_ASSIGN_OR_RETURN(std::string key_raw, ReadFile(key_path));
  SecretBytes key_pem(std::move(key_raw));
  LoadedCa ca;
  auto cert = ParseCert(crt_pem);
  if (!cert.ok()) return Annotate(cert.status(), crt_path);
  ca.cert = std::move(*cert);
  auto key = ParseKey(RevealSecret(key_pem));
  if (!key.ok()) return Annotate(key.status(), key_path);
  ca.key = std::move(*key);
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(key_path + ": not the key of " + crt_path);
  }
  auto td = TrustDomainOfCa(crt_pem);
  if (!td.ok()) return Annotate(td.status(), crt_path);
  ca.trust_domain = *td;
  return ca;
}

// Writes a new key and certificate pair; refuses to replace either.
absl::Status WritePair(const std::string& dir, const std::string& stem, EVP_PKEY* key, X509* cert) {
  const std::string key_path = dir + "/" + stem + ".key";
  const std::string crt_path = dir + "/" + stem + ".crt";
  for (const auto& p : {key_path, crt_path})
    if (std::filesystem::exists(std::filesystem::symlink_status(p)))
      return absl::AlreadyExistsError(p + " exists; remove it first to replace it");
  LETHE_RETURN_IF_ERROR(WriteNewFile(key_path, RevealSecret(KeyPem(key)), 0600));
  return WriteNewFile(crt_path, CertPem(cert), 0644);
}

absl::Status PrepareDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::UnavailableError("cannot create " + dir + ": " + ec.message());
  return absl::OkStatus();
}

bool IsIpAddress(const std::string& host) {
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  if (ip == nullptr) {
    ERR_clear_error();
    return false;
  }
  ASN1_OCTET_STRING_free(ip);
  return true;
}

bool IsDnsName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(absl::string_view(h.data(), h.size()), '.')) {
    if (label.empty() || label.size() > 63) return false;
    for (char c : label)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '*'))
        return false;
  }
  return true;
}

}  // namespace

std::string SpiffeId::ToUri() const {
  return absl::StrCat("spiffe://", trust_domain, "/lethe/", role, "/", name);
}

bool IsCertName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

bool IsTrustDomain(std::string_view td) {
  if (td.empty() || td.size() > 255) return false;
  return std::all_of(td.begin(), td.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

absl::StatusOr<SpiffeId> ParseSpiffeId(std::string_view uri) {
  constexpr std::string_view kScheme = "spiffe://";
  if (uri.substr(0, kScheme.size()) != kScheme)
    return absl::InvalidArgumentError("URI SAN \"" + Quote(uri) + "\" is not a spiffe:// id");
  std::vector<std::string> parts =
      absl::StrSplit(absl::string_view(uri.data() + kScheme.size(), uri.size() - kScheme.size()), '/');
  if (parts.size() != 4 || parts[1] != "lethe")
    return absl::InvalidArgumentError("SPIFFE id \"" + Quote(uri) +
                                      "\" is not of the form spiffe://TRUST_DOMAIN/lethe/ROLE/NAME");
  SpiffeId id{parts[0], parts[2], parts[3]};
  if (!IsTrustDomain(id.trust_domain))
    return absl::InvalidArgumentError("SPIFFE id \"" + Quote(uri) + "\": bad trust domain");
  if (id.role.empty() || id.role.size() > 32 ||
      !std::all_of(id.role.begin(), id.role.end(), [](char c) { return c >= 'a' && c <= 'z'; }))
    return absl::InvalidArgumentError("SPIFFE id \"" + Quote(uri) + "\": bad role");
  if (!IsCertName(id.name))
    return absl::InvalidArgumentError("SPIFFE id \"" + Quote(uri) + "\": bad name");
  return id;
}

absl::StatusOr<CertificateInfo> InspectCertificate(std::string_view pem) {
  LETHE_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(pem));
  CertificateInfo info;
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  if (len <= 0) return absl::InvalidArgumentError("certificate does not encode");
  info.sha256_hex = Hex(Sha256(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len))));
  OPENSSL_free(der);
  ossl::GeneralNames sans(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans.get(), i);
      if (g->type != GEN_URI) continue;
      const ASN1_IA5STRING* s = g->d.uniformResourceIdentifier;
      info.uri_sans.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                 static_cast<size_t>(ASN1_STRING_length(s)));
    }
  }
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn)) > 0)
    info.common_name = cn;
  return info;
}

absl::StatusOr<std::string> TrustDomainOfCa(std::string_view ca_pem) {
  LETHE_ASSIGN_OR_RETURN(CertificateInfo info, InspectCertificate(ca_pem));
  constexpr std::string_view kScheme = "spiffe://";
  for (const auto& uri : info.uri_sans) {
    if (uri.rfind(kScheme, 0) != 0) continue;
    std::string td = uri.substr(kScheme.size());
    if (!td.empty() && td.back() == '/') td.pop_back();
    if (IsTrustDomain(td)) return td;
  }
  return absl::NotFoundError("the CA certificate names no trust domain (no spiffe://TRUST_DOMAIN URI SAN)");
}

absl::Status CreateCa(const std::string& dir, const std::string& trust_domain, CertOptions options) {
  if (!IsTrustDomain(trust_domain))
    return absl::InvalidArgumentError("--trust-domain: \"" + Quote(trust_domain) +
                                      "\" is not a trust domain ([a-z0-9._-], 1..255 characters)");
  LETHE_RETURN_IF_ERROR(PrepareDir(dir));
  LETHE_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  LETHE_ASSIGN_OR_RETURN(X509Ptr cert,
                   Issue(key.get(), "Lethe CA " + trust_domain, nullptr, key.get(), options.lifetime,
                         {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                          {NID_key_usage, "critical,keyCertSign,cRLSign"},
                          {NID_subject_key_identifier, "hash"},
                          {NID_subject_alt_name, "URI:spiffe://" + trust_domain}}));
  return WritePair(dir, "ca", key.get(), cert.get());
}

absl::Status CreateServerCert(const std::string& dir, const std::vector<std::string>& hosts,
                              CertOptions options) {
  if (hosts.empty()) return absl::InvalidArgumentError("--host: at least one is required");
  std::string san;
  for (const auto& h : hosts) {
    std::string entry;
    if (IsIpAddress(h)) entry = "IP:" + h;
    else if (IsDnsName(h)) entry = "DNS:" + h;
    else return absl::InvalidArgumentError("--host: \"" + Quote(h) + "\" is neither a DNS name nor an IP address");
    san += (san.empty() ? "" : ",") + entry;
  }
  LETHE_ASSIGN_OR_RETURN(LoadedCa ca, LoadCa(dir));
  LETHE_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  LETHE_ASSIGN_OR_RETURN(X509Ptr cert,
                   Issue(key.get(), hosts.front(), ca.cert.get(), ca.key.get(), options.lifetime,
                         {{NID_basic_constraints, "critical,CA:FALSE"},
                          {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                          {NID_ext_key_usage, "serverAuth"},
                          {NID_authority_key_identifier, "keyid"},
                          {NID_subject_alt_name, san}}));
  return WritePair(dir, "server", key.get(), cert.get());
}

absl::Status CreateClientCert(const std::string& dir, const std::string& role,
                              const std::string& name, CertOptions options) {
  if (role != "admin" && role != "operator" && role != "auditor")
    return absl::InvalidArgumentError("--role: \"" + Quote(role) + "\" is not admin, operator or auditor");
  if (!IsCertName(name))
    return absl::InvalidArgumentError("--name: \"" + Quote(name) +
                                      "\" is not a name ([A-Za-z0-9._-], 1..64 characters, not starting with '.')");
  LETHE_ASSIGN_OR_RETURN(LoadedCa ca, LoadCa(dir));
  const SpiffeId id{ca.trust_domain, role, name};
  LETHE_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  LETHE_ASSIGN_OR_RETURN(X509Ptr cert,
                   Issue(key.get(), name, ca.cert.get(), ca.key.get(), options.lifetime,
                         {{NID_basic_constraints, "critical,CA:FALSE"},
                          {NID_key_usage, "critical,digitalSignature"},
                          {NID_ext_key_usage, "clientAuth"},
                          {NID_authority_key_identifier, "keyid"},
                          {NID_subject_alt_name, "URI:" + id.ToUri()}}));
  return WritePair(dir, "client." + name, key.get(), cert.get());
}

}  // namespace lethe::crypto
