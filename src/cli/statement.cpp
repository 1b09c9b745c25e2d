// corral statement [close|keygen|verify]: revenue-share statements from the ledger (JSON, CSV,
// PDF), closing a period (stored digest, Ed25519 signature) and checking a signed statement.
#include "hosting/statement.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/hosting_flags.h"
#include "hosting/signing.h"

namespace corral::cli {

namespace {

struct StatementArgs {
  std::string ledger, from, to, tenant, format = "json", out, host, key, file, public_key;
  bool licensor = false, force = false;
  bool public_to_stdout = true;  // keygen prints the public key (not when close makes the key)
};

std::string host_name(const std::string& flag) {
  return flag.empty() ? default_host_name() : flag;
}

Status period(const StatementArgs& a, int64_t* from, int64_t* to) {
  if (a.from.empty() || a.to.empty()) return make_error("--from and --to are required (ISO-8601)");
  CORRAL_ASSIGN_OR_RETURN(*from, time_flag("--from", a.from, 0));
  CORRAL_ASSIGN_OR_RETURN(*to, time_flag("--to", a.to, 0));
  if (*to <= *from) return make_error("--to must be after --from");
  return Status::ok();
}

Status write_out(const std::string& path, const std::string& data) {
  if (path.empty() || path == "-") {
    std::fwrite(data.data(), 1, data.size(), stdout);
    return Status::ok();
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return make_error(path + ": cannot write");
    f << data;
    if (!f.flush()) return make_error(path + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return make_error(path + ": cannot write");
  return Status::ok();
}

Status keygen(StatementArgs& a);

Status generate(StatementArgs& a) {
  int64_t from, to;
  CORRAL_RETURN_IF_ERROR(period(a, &from, &to));
  if (a.format != "json" && a.format != "csv" && a.format != "pdf")
    return make_error("--format must be json, csv or pdf (not '" + a.format + "')");
  if (!a.tenant.empty()) CORRAL_RETURN_IF_ERROR(validate_tenant_name(a.tenant));
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto r, compute_statement(*l, from, to, a.tenant, host_name(a.host)));
  for (auto& w : r.st.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  nlohmann::json j = r.json;
  std::vector<LicenseEvent> events;
  if (a.licensor) {
    CORRAL_ASSIGN_OR_RETURN(events, l->license_events(from, to));
    j = licensor_json(r.json, events);
  }
  if (a.format == "json") return write_out(a.out, j.dump(2) + "\n");
  if (a.format == "csv") return write_out(a.out, a.licensor ? licensor_csv(j) : statement_csv(j));
  if ((a.out.empty() || a.out == "-") && isatty(STDOUT_FILENO))
    return make_error("--format pdf: give -o FILE.pdf (or redirect standard output)");
  CORRAL_ASSIGN_OR_RETURN(std::string pdf, statement_pdf(j, a.licensor ? &events : nullptr));
  return write_out(a.out, pdf);
}

Status close(StatementArgs& a) {
  int64_t from, to;
  CORRAL_RETURN_IF_ERROR(period(a, &from, &to));
  const int64_t now = now_ms();
  if (to > now)
    std::fprintf(stderr,
                 "warning: the period has not ended (--to %s): requests that start in it from now "
                 "on are carried into the next period as adjustments\n",
                 format_iso8601(to).c_str());
  // The host's key: --key, else the default path, made there on first use (and said so).
  const std::string key_path = a.key.empty() ? default_key_path() : a.key;
  if (a.key.empty() && access(key_path.c_str(), F_OK) != 0) {
    StatementArgs kg;
    kg.out = key_path;
    kg.public_to_stdout = false;
    std::fprintf(stderr, "no statement key at %s yet: making one\n", key_path.c_str());
    CORRAL_RETURN_IF_ERROR(keygen(kg));
  }
  CORRAL_ASSIGN_OR_RETURN(SigningKey key, read_signing_key(key_path));
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto r, compute_statement(*l, from, to, "", host_name(a.host)));
  if (r.closed)
    return make_error("the period " + format_iso8601(from) + " .. " + format_iso8601(to) +
                      " is closed already (digest " + r.json.value("digest", "") + ")");
  for (auto& w : r.st.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  nlohmann::json j = r.json;
  const std::string digest = j["digest"];
  CORRAL_ASSIGN_OR_RETURN(std::string sig, sign_hex(key, digest));
  j["signature"] = {{"algorithm", "ed25519"},
                    {"public_key", key.public_hex},
                    {"signed", "digest"},
                    {"value", sig}};
  ClosedStatement c{from, to, digest, j.dump(), now};
  CORRAL_RETURN_IF_ERROR(l->close_statement(c, r.st.request_ids));
  int64_t adj = 0;
  for (auto& line : r.st.lines) adj += line.adjustment ? line.t.requests : 0;
  std::fprintf(stderr,
               "closed %s .. %s: %zu request(s) billed (%lld carried from closed periods), "
               "digest %s, signed with key %s\n",
               format_iso8601(from).c_str(), format_iso8601(to).c_str(), r.st.request_ids.size(),
               (long long)adj, digest.c_str(), key.public_hex.c_str());
  return write_out(a.out, j.dump(2) + "\n");
}

Status keygen(StatementArgs& a) {
  const std::string path = a.out.empty() ? default_key_path() : a.out;
  std::string pub = path;
  if (pub.size() > 4 && pub.substr(pub.size() - 4) == ".key") pub.resize(pub.size() - 4);
  pub += ".pub";
  CORRAL_ASSIGN_OR_RETURN(SigningKey k, generate_signing_key());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | (a.force ? 0 : O_EXCL), 0600);
  if (fd < 0)
    return make_error(path + (errno == EEXIST
                                  ? ": exists already (a statement key is never "
                                    "overwritten without --force)"
                                  : ": cannot create: " + std::string(strerror(errno))));
  fchmod(fd, 0600);
  const std::string line = k.secret_hex + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size()) && fsync(fd) == 0;
  ::close(fd);
  if (!ok) return make_error(path + ": write failed");
  CORRAL_RETURN_IF_ERROR(write_out(pub, k.public_hex + "\n"));
  if (a.public_to_stdout) std::printf("%s\n", k.public_hex.c_str());
  std::fprintf(stderr,
               "secret key: %s (mode 0600, keep it)\npublic key: %s (give it to the licensor)\n",
               path.c_str(), pub.c_str());
  return Status::ok();
}

Status verify(StatementArgs& a) {
  std::stringstream ss;
  if (a.file == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream f(a.file);
    if (!f) return make_error(a.file + ": cannot read");
    ss << f.rdbuf();
  }
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error(a.file + ": not a JSON statement");
  if (!j.contains("digest") || !j["digest"].is_string())
    return make_error(a.file + ": the statement has no digest");
  std::string key = a.public_key;
  if (std::ifstream kf(key); kf && key.size() != 64) kf >> key;  // a .pub file
  const std::string digest = statement_digest(j);
  if (digest != j["digest"].get<std::string>())
    return make_error(a.file + ": digest mismatch: the statement's content hashes to " + digest +
                      ", but it says " + j["digest"].get<std::string>() + " (it was changed)");
  if (!j.contains("signature") || !j["signature"].is_object())
    return make_error(a.file +
                      ": the digest matches, but the statement is not signed (only a "
                      "closed statement is)");
  const auto& s = j["signature"];
  auto field = [&](const char* k) {
    return s.contains(k) && s[k].is_string() ? s[k].get<std::string>() : std::string();
  };
  if (field("algorithm") != "ed25519")
    return make_error(a.file + ": unknown signature algorithm '" + field("algorithm") + "'");
  CORRAL_ASSIGN_OR_RETURN(bool ok, verify_hex(key, digest, field("value")));
  if (!ok)
    return make_error(a.file + ": the signature does not verify with public key " + key +
                      (field("public_key") != key ? " (the statement names another key)" : ""));
  std::printf("statement verify: ok: digest %s, Ed25519 signature valid for public key %s\n",
              digest.c_str(), key.c_str());
  return Status::ok();
}

}  // namespace

Action add_statement(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "statement", "Revenue-share statements: generate (json, csv, pdf), close, keygen, verify");
  sub->require_subcommand(0, 1);
  auto a = std::make_shared<StatementArgs>();
  sub->add_option("--from", a->from, "period start, inclusive (ISO-8601)");
  sub->add_option("--to", a->to, "period end, exclusive (ISO-8601)");
  sub->add_option("--tenant", a->tenant, "only this tenant");
  sub->add_option("--format", a->format, "json (default), csv or pdf");
  sub->add_option("-o,--output", a->out, "write here (default: standard output)");
  sub->add_flag("--licensor", a->licensor,
                "the licensor's view: per family across tenants, and the license events");
  sub->add_option("--host", a->host,
                  "host name on the statement (default $CORRAL_HOST_NAME, else "
                  "the machine's name)");
  add_ledger_flag(sub, a->ledger);
  auto* cl = sub->add_subcommand("close", "Close a period: store its digest and sign it");
  cl->add_option("--from", a->from, "period start, inclusive (ISO-8601)")->required();
  cl->add_option("--to", a->to, "period end, exclusive (ISO-8601)")->required();
  cl->add_option("--key", a->key,
                 "the signing key (default $CORRAL_STATEMENT_KEY, else "
                 "corral-statement.key)");
  cl->add_option("--host", a->host, "host name on the statement");
  cl->add_option("-o,--output", a->out, "write the signed statement here (default: stdout)");
  add_ledger_flag(cl, a->ledger);
  auto* kg = sub->add_subcommand("keygen", "Make the host's Ed25519 statement key pair");
  kg->add_option("-o,--output", a->out,
                 "secret key file (default corral-statement.key; the "
                 "public key goes beside it as .pub)");
  kg->add_flag("--force", a->force, "overwrite an existing key");
  auto* vf = sub->add_subcommand("verify", "Check a statement's digest and signature");
  vf->add_option("FILE", a->file, "the statement, JSON (- for standard input)")->required();
  vf->add_option("--public-key", a->public_key, "the host's public key (hex, or its .pub file)")
      ->required();
  return [a, cl, kg, vf] {
    if (cl->parsed()) return close(*a);
    if (kg->parsed()) return keygen(*a);
    if (vf->parsed()) return verify(*a);
    return generate(*a);
  };
}

}  // namespace corral::cli
