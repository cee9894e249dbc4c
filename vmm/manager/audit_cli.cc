#include "vmm/manager/audit_cli.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/unique_fd.h"
#include "vmm/manager/audit/log_verifier.h"
#include "vmm/manager/exit_status.h"

namespace vmm {

AuditCli::AuditCli(CLI::App& app) {
  CLI::App* audit = app.add_subcommand("audit", "Check the manager's audit log");
  audit->require_subcommand(1);
  audit->footer("Exit status: that of the subcommand; 2 bad flags.");
  verify_ = audit->add_subcommand(
      "verify",
      "Walk a hash-chained audit log (vmm run --audit-log) and locate every record that was "
      "altered, removed, reordered or inserted, every checkpoint whose signature fails, and "
      "torn writes from a crash");
  verify_->add_option("LOG", log_, "The audit log (JSON lines)")->required();
  verify_
      ->add_option("--key", key_,
                   "The operator's checkpoint public key (PEM, EC P-256): check every "
                   "checkpoint's signature. Without it signatures are not checked")
      ->type_name("PUB.pem");
  verify_
      ->add_option("--anchor", anchor_,
                   "SEQ:SHA256 printed by an earlier verify and kept off the host: the log must "
                   "still hold that record unchanged (catches records removed from the end)")
      ->type_name("SEQ:SHA256");
  verify_->add_flag("--json", json_, "Print the report as JSON");
  verify_->footer(
      "Exit status: 0 intact (every record chains, every session ended with its final "
      "checkpoint); 1 tampered (the findings name each line and seq); 2 bad input (flags, an "
      "unreadable log or key); 3 no tampering found, but incomplete: a torn write from a crash, "
      "or a session without its final checkpoint (a crash, a writer still running, or records "
      "removed from the end: --anchor tells).");
}

int AuditCli::Run() {
  audit::VerifyOptions options;
  std::optional<audit::CheckpointVerifier> key;
  if (!key_.empty()) {
    auto loaded = audit::CheckpointVerifier::Load(key_);
    if (!loaded) {
      Fail(loaded.error());
      return kAuditBadInput;
    }
    key = std::move(loaded).value();
    options.key = &*key;
  }
  if (!anchor_.empty()) {
    auto anchor = audit::ParseAnchor(anchor_);
    if (!anchor) {
      Fail(anchor.error());
      return kAuditBadInput;
    }
    options.anchor = *anchor;
  }
  UniqueFd fd(open(log_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    Fail(Error(ErrorKind::kInvalidArgument, "opening the audit log '" + log_ + "'", errno));
    return kAuditBadInput;
  }
  auto verified = audit::VerifyLogFd(fd.get(), options);
  if (!verified) {
    Fail(verified.error());
    return kAuditBadInput;
  }
  const audit::VerifyReport& r = *verified;
  const audit::VerifyStatus status = r.status();
  const int exit_status = status == audit::VerifyStatus::kIntact     ? kAuditIntact
                          : status == audit::VerifyStatus::kTampered ? kAuditTampered
                                                                     : kAuditIncomplete;
  if (json_) {
    nlohmann::json j;
    j["log"] = log_;
    j["status"] = audit::VerifyStatusName(status);
    j["exit_status"] = exit_status;
    j["lines"] = r.lines;
    j["records"] = r.records;
    j["sessions"] = r.sessions;
    j["checkpoints"] = r.checkpoints;
    j["signatures_checked"] = r.signatures_checked;
    j["signatures_verified"] = r.signatures_verified;
    j["key_fpr"] = key ? key->fingerprint() : "";
    j["last_seq"] = r.last_seq;
    j["head"] = r.head;
    j["anchor"] = r.last_checkpoint_anchor;
    nlohmann::json findings = nlohmann::json::array();
    for (const audit::Finding& f : r.findings) {
      findings.push_back({{"kind", audit::FindingKindName(f.kind)},
                          {"line", f.line},
                          {"seq", f.seq},
                          {"message", f.message}});
    }
    j["findings"] = std::move(findings);
    j["findings_dropped"] = r.findings_dropped;
    std::printf("%s\n", j.dump(2, ' ', true, nlohmann::json::error_handler_t::replace).c_str());
    return exit_status;
  }
  std::printf("%s: %llu lines, %llu records, %llu sessions, %llu checkpoints\n", log_.c_str(),
              static_cast<unsigned long long>(r.lines), static_cast<unsigned long long>(r.records),
              static_cast<unsigned long long>(r.sessions),
              static_cast<unsigned long long>(r.checkpoints));
  if (key) {
    std::printf("signatures: %llu verified with key %s\n",
                static_cast<unsigned long long>(r.signatures_verified), key->fingerprint().c_str());
  } else {
    std::printf("signatures: NOT checked (no --key)\n");
  }
  for (const audit::Finding& f : r.findings) {
    std::printf("%s: %s\n", audit::FindingKindName(f.kind), f.message.c_str());
  }
  if (r.findings_dropped != 0) {
    std::printf("... and %llu more findings\n",
                static_cast<unsigned long long>(r.findings_dropped));
  }
  if (!r.last_checkpoint_anchor.empty()) {
    std::printf("anchor (keep it off this host; verify --anchor checks it later): %s\n",
                r.last_checkpoint_anchor.c_str());
  }
  std::printf("result: %s\n", audit::VerifyStatusName(status));
  return exit_status;
}

}  // namespace vmm
