// The one way our binaries end a CLI11 parse: --help and --version print and give exit status
// 0; any other error prints "PROG: error: WHAT" and where to find the usage, and gives 2 (bad
// input, as every binary's exit-status text says). Header-only: only the targets that use
// CLI11 include it.
//
//   CLI::App app{"...", "vmm-device"};
//   ...
//   if (std::optional<int> done = ParseCommandLine(app, argc, argv, "vmm-device")) return *done;
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

namespace vmm {

// `usage` is the command that shows the usage (default "PROG --help").
inline std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv,
                                           const std::string& prog, const std::string& usage = "") {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "%s: error: %s\nRun '%s' for usage.\n", prog.c_str(), e.what(),
                 (usage.empty() ? prog + " --help" : usage).c_str());
    return 2;
  }
  return std::nullopt;
}

// A required option taking one value, shown in --help as `type`.
template <typename T>
CLI::Option* AddRequiredOption(CLI::App* app, const std::string& name, T& value,
                               const std::string& help, const std::string& type) {
  return app->add_option(name, value, help)->required()->type_name(type);
}

// An optional one.
template <typename T>
CLI::Option* AddTypedOption(CLI::App* app, const std::string& name, T& value,
                            const std::string& help, const std::string& type) {
  return app->add_option(name, value, help)->type_name(type);
}

}  // namespace vmm
