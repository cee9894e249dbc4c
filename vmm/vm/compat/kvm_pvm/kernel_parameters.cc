#include "vmm/vm/compat/kvm_pvm/kernel_parameters.h"

#include <algorithm>

namespace vmm::compat::pvm {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

struct Word {
  std::string_view text;
  size_t pos;
};

std::vector<Word> SplitWords(std::string_view s) {
  std::vector<Word> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsSpace(s[i])) ++i;
    size_t start = i;
    while (i < s.size() && !IsSpace(s[i])) ++i;
    if (i > start) words.push_back({s.substr(start, i - start), start});
  }
  return words;
}

char Fold(char c) { return c == '-' ? '_' : c; }

}  // namespace

std::string_view ParameterKey(std::string_view parameter) {
  return parameter.substr(0, parameter.find('='));
}

bool SameKey(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return Fold(x) == Fold(y); });
}

KernelParameterPlan AddKernelParameters(std::string_view user_cmdline) {
  std::vector<Word> words = SplitWords(user_cmdline);
  auto init_args =
      std::find_if(words.begin(), words.end(), [](const Word& w) { return w.text == "--"; });
  KernelParameterPlan plan;
  std::string ours;
  for (const KernelParameter& p : kKernelParameters) {
    std::string_view key = ParameterKey(p.text);
    bool user_sets = std::any_of(words.begin(), init_args, [key](const Word& w) {
      return SameKey(ParameterKey(w.text), key);
    });
    (user_sets ? plan.left_out : plan.added).emplace_back(p.text);
    if (!user_sets) ours += (ours.empty() ? "" : " ") + std::string(p.text);
  }
  if (ours.empty()) {
    plan.cmdline = std::string(user_cmdline);
  } else if (init_args == words.end()) {
    plan.cmdline = std::string(user_cmdline);
    while (!plan.cmdline.empty() && IsSpace(plan.cmdline.back())) plan.cmdline.pop_back();
    plan.cmdline += (plan.cmdline.empty() ? "" : " ") + ours;
  } else {
    // "root=/dev/vda -- single" -> "root=/dev/vda <ours> -- single"
    size_t at = init_args->pos;
    plan.cmdline =
        std::string(user_cmdline.substr(0, at)) + ours + " " + std::string(user_cmdline.substr(at));
  }
  return plan;
}

}  // namespace vmm::compat::pvm
