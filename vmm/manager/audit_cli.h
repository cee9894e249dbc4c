// `vmm audit verify` on the command line: its flags, help, output and exit status. The checks
// are in audit/log_verifier.h.
//
//   AuditCli audit(app);               // adds `audit` and its subcommands to `app`
//   app.parse(argc, argv);
//   if (audit.parsed()) return audit.Run();
//
// Ownership: AuditCli holds the parsed values; `app` owns the subcommands and must outlive it.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace vmm {

// Exit statuses of `vmm audit verify` (README.md "Audit trail").
inline constexpr int kAuditIntact = 0;      // every record chains, every session closed
inline constexpr int kAuditTampered = 1;    // a record was altered, removed, moved or inserted
inline constexpr int kAuditBadInput = 2;    // flags, an unreadable log or key
inline constexpr int kAuditIncomplete = 3;  // no tampering, but a torn write or an open session

class AuditCli {
 public:
  explicit AuditCli(CLI::App& app);
  AuditCli(const AuditCli&) = delete;
  AuditCli& operator=(const AuditCli&) = delete;

  bool parsed() const { return verify_->parsed(); }
  // Runs the parsed subcommand; returns the process's exit status.
  int Run();

 private:
  CLI::App* verify_ = nullptr;
  std::string log_;
  std::string key_;
  std::string anchor_;
  bool json_ = false;
};

}  // namespace vmm
