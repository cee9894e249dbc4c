// Measured boot seen from three sides (README "Measured boot", ARCHITECTURE.md §6):
// - `vmm measure` predicts, without KVM, the log and PCRs that `vmm run` with the same flags
//   produces: the test guest's measured-boot check (tests/guest/checks/measured_boot.c) reads
//   the log through the TPM2 table, replays it against its vTPM and prints each PCR it read
//   (`mb: pcr <n> <bank> <hex>`), and the copy `--event-log-out` keeps is byte for byte the
//   log `vmm measure --log-out` writes;
// - tpm2-tools' tpm2_eventlog, an independent parser, replays our log to our PCRs.
// The boots need /dev/kvm; the tpm2_eventlog test needs tpm2-tools. Each skips without.
#include <openssl/evp.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/vmm_process.h"

namespace vmm::testing {
namespace {

using nlohmann::json;

constexpr int kEvNoAction = 3;

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> FromHex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string FreshPath(const std::string& name) {
  std::string path = WriteTempFile(name, {});
  unlink(path.c_str());
  return path;
}

// `vmm measure <args> --json --log-out <log>`: the JSON document, the binary log beside it.
json Measure(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv = {BinDir() + "/vmm", "measure", "--json", "--log-out", log};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult r = RunProcess(argv, 60);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(doc.is_discarded()) << r.out;
  return doc;
}

// What the log predicts the guest will say: its records (after the header), the PCRs the
// scheme touches (PCR 0 through StartupLocality, and every PCR extended), its ACPI tables.
struct Prediction {
  size_t events = 0;
  std::set<int> pcrs;
  size_t acpi_tables = 0;
};

Prediction Predict(const json& doc) {
  Prediction p;
  p.pcrs.insert(0);
  for (const json& e : doc.at("events")) {
    if (e.at("index").get<int>() == 0) continue;  // the Spec ID header
    ++p.events;
    if (e.at("type").get<int>() == kEvNoAction) continue;
    p.pcrs.insert(e.at("pcr").get<int>());
    std::vector<uint8_t> data = FromHex(e.at("data").get<std::string>());
    if (std::string(data.begin(), data.end()).starts_with("ACPI ")) ++p.acpi_tables;
  }
  return p;
}

struct Case {
  const char* kernel;
  bool initramfs;
};

// The guest's vTPM holds exactly what `vmm measure` says, PCR by PCR and bank by bank, the
// guest's own rehash of its command line, initramfs and ACPI tables agrees with the log, and
// the host's copy of the log is the predicted one.
TEST(MeasuredBootKvm, TheGuestsVtpmHoldsWhatVmmMeasurePredicts) {
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  // Small: on kvm_pvm the test guest hashes only a few KB/s (its ring 0 is slow there).
  std::vector<uint8_t> initrd(4099);
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i * 7 + i / 251);
  const std::string initrd_path = WriteTempFile("mb-initrd.bin", initrd);
  for (const Case& c : {Case{"testguest.elf", false}, Case{"testguest.elf", true},
                        Case{"testguest.bzImage", true}}) {
    SCOPED_TRACE(std::string(c.kernel) + (c.initramfs ? " with an initramfs" : ""));
    std::vector<std::string> flags = {"--kernel",  BinDir() + "/" + c.kernel, "--tpm", "ephemeral",
                                      "--cmdline", "expect_tpm=crb"};
    if (c.initramfs) flags.insert(flags.end(), {"--initramfs", initrd_path});
    const std::string predicted_log = FreshPath("mb-predicted.log");
    json doc = Measure(flags, predicted_log);
    ASSERT_TRUE(doc.contains("pcrs")) << doc.dump();
    const Prediction want = Predict(doc);
    EXPECT_EQ(want.pcrs.count(9), c.initramfs ? 1u : 0u);

    const std::string kept_log = FreshPath("mb-kept.log");
    std::vector<std::string> run = flags;
    run.insert(run.end(), {"--event-log-out", kept_log});
    ProcessResult r = RunVmm(run, 120);
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("testguest: result PASS"), std::string::npos) << r.out;
    EXPECT_EQ(ReadBytes(kept_log), ReadBytes(predicted_log))
        << "--event-log-out differs from vmm measure --log-out";

    std::string pcr_list;
    for (int pcr : want.pcrs) pcr_list += (pcr_list.empty() ? "" : ",") + std::to_string(pcr);
    const std::string line = "check measured-boot: ok " + std::to_string(want.events) +
                             " events, pcrs " + pcr_list + " match (sha256,sha384); cmdline, " +
                             (c.initramfs ? "initramfs, " : "") + std::to_string(want.acpi_tables) +
                             " acpi tables rehashed\n";
    EXPECT_NE(r.out.find(line), std::string::npos) << "want: " << line << r.out;

    std::map<std::pair<int, std::string>, std::string> reported;
    static const std::regex re("mb: pcr ([0-9]+) (sha256|sha384) ([0-9a-f]+)");
    for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), re);
         it != std::sregex_iterator(); ++it) {
      reported[{std::stoi((*it)[1].str()), (*it)[2].str()}] = (*it)[3].str();
    }
    EXPECT_EQ(reported.size(), 2 * want.pcrs.size()) << r.out;
    for (const char* bank : {"sha256", "sha384"}) {
      for (int pcr : want.pcrs) {
        auto got = reported.find({pcr, bank});
        ASSERT_NE(got, reported.end()) << "no mb line for PCR " << pcr << " " << bank;
        EXPECT_EQ(got->second, doc["pcrs"][bank][std::to_string(pcr)].get<std::string>())
            << "PCR " << pcr << " " << bank;
      }
    }
  }
}

// --event-log-out needs a vTPM (checked before anything starts) and never replaces a file.
TEST(MeasuredBootCli, EventLogOutNeedsATpmAndANewFile) {
  const std::string kernel = BinDir() + "/testguest.elf";
  const std::string path = FreshPath("mb-no-tpm.log");
  ProcessResult no_tpm = RunVmm({"--kernel", kernel, "--event-log-out", path});
  EXPECT_EQ(no_tpm.exit_code, 2) << no_tpm.err;
  EXPECT_NE(no_tpm.err.find("--event-log-out: the VM has no vTPM"), std::string::npos)
      << no_tpm.err;
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "a file was created without a vTPM";

  if (!HaveKvm()) GTEST_SKIP() << "the existing-file case needs /dev/kvm (checked after it)";
  const std::string existing = WriteTempFile("mb-existing.log", {'k', 'e', 'e', 'p'});
  ProcessResult exists =
      RunVmm({"--kernel", kernel, "--tpm", "ephemeral", "--event-log-out", existing});
  EXPECT_EQ(exists.exit_code, 2) << exists.err;
  EXPECT_NE(exists.err.find("File exists"), std::string::npos) << exists.err;
  EXPECT_EQ(ReadBytes(existing), (std::vector<uint8_t>{'k', 'e', 'e', 'p'}));
  EXPECT_EQ(exists.out.find("testguest: hello"), std::string::npos) << "the VM ran";
}

std::string FindInPath(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = dir + "/" + tool;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// tpm2_eventlog's YAML ends with "pcrs:", a line per bank ("  sha256:") and a line per PCR
// ("    4  : 0x<hex>"). Returns bank -> pcr -> lowercase hex.
std::map<std::string, std::map<int, std::string>> YamlPcrs(const std::string& yaml) {
  std::map<std::string, std::map<int, std::string>> out;
  size_t at = yaml.find("\npcrs:\n");
  if (at == std::string::npos) return out;
  std::istringstream in(yaml.substr(at + 7));
  std::string line, bank;
  static const std::regex bank_re("^  ([a-z0-9_]+):\\s*$");
  static const std::regex pcr_re("^    ([0-9]+)\\s*: 0x([0-9a-fA-F]+)\\s*$");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, bank_re)) {
      bank = m[1].str();
    } else if (std::regex_match(line, m, pcr_re) && !bank.empty()) {
      std::string hex = m[2].str();
      for (char& ch : hex) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out[bank][std::stoi(m[1].str())] = hex;
    } else {
      break;
    }
  }
  return out;
}

std::string Hex(const std::vector<uint8_t>& b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t v : b) s += {digits[v >> 4], digits[v & 15]};
  return s;
}

// tpm2-tools before 5.6 (Debian 12 has 5.4) replays PCR 0 from zero and extends the
// EV_NO_ACTION events' zero digests too (tpm2-tools issues #3224 and #3146): its PCR 0 of our
// log, recomputed here from the events `vmm measure` printed.
std::string Pcr0AsOldTpm2Tools(const json& doc, const std::string& bank) {
  const EVP_MD* md = bank == "sha256" ? EVP_sha256() : EVP_sha384();
  std::vector<uint8_t> pcr(static_cast<size_t>(EVP_MD_get_size(md)), 0);
  for (const json& e : doc.at("events")) {
    if (e.at("pcr").get<int>() != 0 || !e.at("digests").contains(bank)) continue;
    std::vector<uint8_t> cat = pcr, digest = FromHex(e["digests"][bank].get<std::string>());
    cat.insert(cat.end(), digest.begin(), digest.end());
    unsigned int n = 0;
    EVP_Digest(cat.data(), cat.size(), pcr.data(), &n, md, nullptr);
  }
  return Hex(pcr);
}

TEST(EventLogTools, Tpm2EventlogReplaysOurLogToOurPcrs) {
  const std::string tool = FindInPath("tpm2_eventlog");
  if (tool.empty()) GTEST_SKIP() << "tpm2_eventlog not installed (Debian package tpm2-tools)";
  ProcessResult version = RunProcess({tool, "--version"}, 30);
  std::smatch m;
  static const std::regex version_re("version=\"([0-9]+)\\.([0-9]+)");
  ASSERT_TRUE(std::regex_search(version.out, m, version_re)) << version.out << version.err;
  const bool old_pcr0 =
      std::stoi(m[1].str()) < 5 || (std::stoi(m[1].str()) == 5 && std::stoi(m[2].str()) < 6);

  const std::string initrd = WriteTempFile("mb-tools-initrd.bin", std::vector<uint8_t>(4096, 0x5a));
  const std::string log = FreshPath("mb-tools.log");
  json doc = Measure({"--kernel", BinDir() + "/testguest.elf", "--tpm", "ephemeral", "--cmdline",
                      "console=ttyS0 expect_tpm=crb", "--initramfs", initrd},
                     log);
  ASSERT_TRUE(doc.contains("pcrs")) << doc.dump();
  const Prediction want = Predict(doc);

  ProcessResult r = RunProcess({tool, log}, 60);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  size_t events = 0;
  for (size_t at = 0; (at = r.out.find("- EventNum: ", at)) != std::string::npos; ++at) ++events;
  EXPECT_EQ(events, want.events + 1) << "tpm2_eventlog saw another number of records";

  auto pcrs = YamlPcrs(r.out);
  for (const char* bank : {"sha256", "sha384"}) {
    SCOPED_TRACE(bank);
    ASSERT_EQ(pcrs.count(bank), 1u) << r.out;
    std::set<int> listed;
    for (const auto& [pcr, value] : pcrs[bank]) {
      listed.insert(pcr);
      const std::string ours = doc["pcrs"][bank][std::to_string(pcr)].get<std::string>();
      if (pcr == 0 && old_pcr0 && value != ours) {
        EXPECT_EQ(value, Pcr0AsOldTpm2Tools(doc, bank)) << "PCR 0, tpm2-tools " << version.out;
      } else {
        EXPECT_EQ(value, ours) << "PCR " << pcr;
      }
    }
    EXPECT_EQ(listed, want.pcrs);
  }
}

}  // namespace
}  // namespace vmm::testing
