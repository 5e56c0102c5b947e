// `completion bash|zsh|fish`: shell completion scripts generated from the command tree that
// main.cc describes, so they list exactly the commands and options that exist.
//
// Every script has the same shape: small lookup functions keyed by the command path ("",
// "workflow", "workflow preview") answer "which subcommands", "which options", "what does the
// value of this option take"; one walker finds the path of the words typed so far.
#include <iostream>
#include <sstream>

#include "base/strings.h"
#include "cli/commands.h"

namespace sloth {
namespace {

struct Entry {
  std::string path;  // subcommand names below the root, joined by spaces
  const CommandInfo* cmd;
};

void Collect(const CommandInfo& cmd, const std::string& path, std::vector<Entry>& out) {
  out.push_back({path, &cmd});
  for (const CommandInfo& sub : cmd.subcommands)
    Collect(sub, path.empty() ? sub.name : path + " " + sub.name, out);
}

std::vector<Entry> Entries(const CommandInfo& root) {
  std::vector<Entry> all;
  Collect(root, "", all);
  return all;
}

// What a value completes to: "file", "dir", "words:a b c" (choices written "a|b|c"), or "any".
std::string ValueKind(const std::string& value) {
  std::string type = value.substr(value.rfind(':') == std::string::npos ? 0 : value.rfind(':') + 1);
  if (type == "FILE") return "file";
  if (type == "DIR") return "dir";
  if (value.find('|') != std::string::npos) return "words:" + Join(Split(value, '|'), " ");
  return "any";
}

std::vector<std::string> SubcommandNames(const CommandInfo& cmd) {
  std::vector<std::string> names;
  for (const CommandInfo& sub : cmd.subcommands) names.push_back(sub.name);
  return names;
}

std::vector<std::string> OptionNames(const CommandInfo& cmd) {
  std::vector<std::string> names;
  for (const OptionInfo& o : cmd.options) names.insert(names.end(), o.names.begin(), o.names.end());
  return names;
}

// The kind of the first positional argument that completes to something, or "".
std::string PositionalKind(const CommandInfo& cmd) {
  for (const OptionInfo& p : cmd.positionals)
    if (ValueKind(p.value) != "any") return ValueKind(p.value);
  return "";
}

std::string SingleQuote(const std::string& s) {  // for bash and zsh
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string FishQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// --- bash ---------------------------------------------------------------------------------

// The two functions bash and zsh share: what the value after an option takes (failing for
// flags) and what a command's positional argument takes. `answer` is how the shell hands a
// word back: "echo " in bash, "REPLY=" in zsh.
void WriteValueKinds(std::ostream& out, const std::vector<Entry>& all, const std::string& answer) {
  out << "_sloth_runner_value() {\n  case \"$1|$2\" in\n";
  for (const Entry& e : all) {
    for (const OptionInfo& o : e.cmd->options) {
      if (o.value.empty()) continue;
      std::vector<std::string> patterns;
      for (const std::string& n : o.names) patterns.push_back("\"" + e.path + "|" + n + "\"");
      out << "    " << Join(patterns, "|") << ") " << answer << SingleQuote(ValueKind(o.value))
          << " ;;\n";
    }
  }
  out << "    *) return 1 ;;\n  esac\n}\n\n";
  out << "_sloth_runner_positional() {\n  case \"$1\" in\n";
  for (const Entry& e : all)
    if (!PositionalKind(*e.cmd).empty())
      out << "    \"" << e.path << "\") " << answer << SingleQuote(PositionalKind(*e.cmd))
          << " ;;\n";
  out << "    *) return 1 ;;\n  esac\n}\n";
}

constexpr char kBashMain[] = R"sh(
_sloth_runner_complete_kind() {
  case "$1" in
    file) compopt -o filenames 2>/dev/null; local IFS=$'\n'; COMPREPLY+=($(compgen -f -- "$2")) ;;
    dir) compopt -o filenames 2>/dev/null; local IFS=$'\n'; COMPREPLY+=($(compgen -d -- "$2")) ;;
    words:*) COMPREPLY+=($(compgen -W "${1#words:}" -- "$2")) ;;
  esac
}

_sloth_runner() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
  local cmdpath="" word i kind
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${COMP_WORDS[i]}"
    case "$word" in
      --*=*) ;;
      -*) if _sloth_runner_value "$cmdpath" "$word" >/dev/null && ((i + 1 < COMP_CWORD)); then
            ((i++))
            [[ "${COMP_WORDS[i]}" == "=" ]] && ((i++))
          fi ;;
      *) if [[ " $(_sloth_runner_subcommands "$cmdpath") " == *" $word "* ]]; then
           cmdpath="${cmdpath:+$cmdpath }$word"
         fi ;;
    esac
  done
  # "--file=x" reaches us as "--file" "=" "x"
  if [[ "$prev" == "=" ]] && ((COMP_CWORD > 1)); then prev="${COMP_WORDS[COMP_CWORD-2]}"; fi
  if [[ "$cur" == "=" ]]; then prev="${COMP_WORDS[COMP_CWORD-1]}"; cur=""; fi
  if [[ "$prev" == -* ]] && kind=$(_sloth_runner_value "$cmdpath" "$prev"); then
    _sloth_runner_complete_kind "$kind" "$cur"
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_sloth_runner_options "$cmdpath")" -- "$cur"))
    return 0
  fi
  COMPREPLY=($(compgen -W "$(_sloth_runner_subcommands "$cmdpath")" -- "$cur"))
  if kind=$(_sloth_runner_positional "$cmdpath"); then
    _sloth_runner_complete_kind "$kind" "$cur"
  fi
  return 0
}

complete -F _sloth_runner sloth-runner
)sh";

std::string Bash(const CommandInfo& root) {
  std::vector<Entry> all = Entries(root);
  std::ostringstream out;
  out << "# bash completion for sloth-runner (generated by `sloth-runner completion bash`).\n"
         "# Load it with:  source <(sloth-runner completion bash)\n\n";
  out << "_sloth_runner_subcommands() {\n  case \"$1\" in\n";
  for (const Entry& e : all)
    if (!e.cmd->subcommands.empty())
      out << "    \"" << e.path << "\") echo " << SingleQuote(Join(SubcommandNames(*e.cmd), " "))
          << " ;;\n";
  out << "  esac\n}\n\n";
  out << "_sloth_runner_options() {\n  case \"$1\" in\n";
  for (const Entry& e : all)
    out << "    \"" << e.path << "\") printf '%s\\n' "
        << SingleQuote(Join(OptionNames(*e.cmd), " ")) << " ;;\n";
  out << "  esac\n}\n\n";
  WriteValueKinds(out, all, "echo ");
  out << kBashMain;
  return out.str();
}

// --- zsh ----------------------------------------------------------------------------------

constexpr char kZshMain[] = R"sh(
_sloth_runner_complete_kind() {
  case $1 in
    file) _files ;;
    dir) _files -/ ;;
    words:*) local -a choices; choices=(${=${1#words:}}); compadd -a choices ;;
  esac
}

_sloth_runner() {
  local cmdpath="" word i
  local -a names
  for ((i = 2; i < CURRENT; i++)); do
    word=${words[i]}
    case $word in
      --*=*) ;;
      -*) if _sloth_runner_value "$cmdpath" "$word" && ((i + 1 < CURRENT)); then ((i++)); fi ;;
      *) _sloth_runner_subcommands "$cmdpath"
         names=(${reply%%:*})
         if (( ${names[(Ie)$word]} )); then cmdpath="${cmdpath:+$cmdpath }$word"; fi ;;
    esac
  done
  local cur=${words[CURRENT]} prev=${words[CURRENT-1]}
  if [[ $cur == --*=* ]]; then
    if _sloth_runner_value "$cmdpath" "${cur%%=*}"; then
      compset -P '*='
      _sloth_runner_complete_kind "$REPLY"
    fi
    return 0
  fi
  if [[ $prev == -* ]] && _sloth_runner_value "$cmdpath" "$prev"; then
    _sloth_runner_complete_kind "$REPLY"
    return 0
  fi
  if [[ $cur == -* ]]; then
    _sloth_runner_options "$cmdpath"
    local -a opts; opts=("${reply[@]}")
    _describe -t options 'option' opts
    return 0
  fi
  _sloth_runner_subcommands "$cmdpath"
  local -a cmds; cmds=("${reply[@]}")
  (( ${#cmds} )) && _describe -t commands 'command' cmds
  if _sloth_runner_positional "$cmdpath"; then _sloth_runner_complete_kind "$REPLY"; fi
  return 0
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
  _sloth_runner "$@"
else
  compdef _sloth_runner sloth-runner
fi
)sh";

// "name:description" for _describe (a colon in the name would need escaping; ours have none).
std::string Described(const std::string& name, const std::string& description) {
  return SingleQuote(name + ":" + description);
}

std::string Zsh(const CommandInfo& root) {
  std::vector<Entry> all = Entries(root);
  std::ostringstream out;
  out << "#compdef sloth-runner\n"
         "# zsh completion for sloth-runner (generated by `sloth-runner completion zsh`).\n"
         "# Load it with:  source <(sloth-runner completion zsh)\n"
         "# or save it as _sloth-runner in a directory of your $fpath.\n\n";
  out << "_sloth_runner_subcommands() {\n  case \"$1\" in\n";
  for (const Entry& e : all) {
    if (e.cmd->subcommands.empty()) continue;
    out << "    \"" << e.path << "\") reply=(";
    for (const CommandInfo& sub : e.cmd->subcommands)
      out << " " << Described(sub.name, sub.description);
    out << " ) ;;\n";
  }
  out << "    *) reply=() ;;\n  esac\n}\n\n";
  out << "_sloth_runner_options() {\n  case \"$1\" in\n";
  for (const Entry& e : all) {
    out << "    \"" << e.path << "\") reply=(";
    for (const OptionInfo& o : e.cmd->options)
      for (const std::string& n : o.names) out << " " << Described(n, o.description);
    out << " ) ;;\n";
  }
  out << "    *) reply=() ;;\n  esac\n}\n\n";
  WriteValueKinds(out, all, "REPLY=");
  out << kZshMain;
  return out.str();
}

// --- fish ---------------------------------------------------------------------------------

constexpr char kFishMain[] = R"sh(
# The command path of the words typed so far ("", "workflow", "workflow preview").
function __sloth_runner_path
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmdpath ''
    set -l skip 0
    for word in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        switch $word
            case '--*=*'
            case '-*'
                if __sloth_runner_takes_value "$cmdpath" $word
                    set skip 1
                end
            case '*'
                if contains -- $word (__sloth_runner_subcommands "$cmdpath")
                    set cmdpath (string trim -- "$cmdpath $word")
                end
        end
    end
    echo $cmdpath
end

function __sloth_runner_at
    set -l current (__sloth_runner_path)
    test "$current" = "$argv[1]"
end

complete -c sloth-runner -f
)sh";

std::string Fish(const CommandInfo& root) {
  std::vector<Entry> all = Entries(root);
  std::ostringstream out;
  out << "# fish completion for sloth-runner (generated by `sloth-runner completion fish`).\n"
         "# Load it with:  sloth-runner completion fish | source\n"
         "# or save it as ~/.config/fish/completions/sloth-runner.fish\n\n";
  out << "function __sloth_runner_subcommands\n    switch $argv[1]\n";
  for (const Entry& e : all) {
    if (e.cmd->subcommands.empty()) continue;
    out << "        case " << FishQuote(e.path) << "\n            printf '%s\\n'";
    for (const std::string& n : SubcommandNames(*e.cmd)) out << " " << FishQuote(n);
    out << "\n";
  }
  out << "    end\nend\n\n";
  out << "function __sloth_runner_takes_value\n    switch \"$argv[1]|$argv[2]\"\n";
  std::vector<std::string> patterns;
  for (const Entry& e : all)
    for (const OptionInfo& o : e.cmd->options)
      if (!o.value.empty())
        for (const std::string& n : o.names) patterns.push_back(FishQuote(e.path + "|" + n));
  if (!patterns.empty())
    out << "        case " << Join(patterns, " ") << "\n            return 0\n";
  out << "    end\n    return 1\nend\n";
  out << kFishMain;
  for (const Entry& e : all) {
    std::string at = "-n " + FishQuote("__sloth_runner_at " + FishQuote(e.path));
    for (const CommandInfo& sub : e.cmd->subcommands)
      out << "complete -c sloth-runner " << at << " -a " << FishQuote(sub.name) << " -d "
          << FishQuote(sub.description) << "\n";
    for (const OptionInfo& o : e.cmd->options) {
      out << "complete -c sloth-runner " << at;
      for (const std::string& n : o.names)
        out << (StartsWith(n, "--") ? " -l " + n.substr(2) : " -s " + n.substr(1));
      std::string kind = o.value.empty() ? "" : ValueKind(o.value);
      if (kind == "file")
        out << " -r -F";
      else if (kind == "dir")
        out << " -x -a '(__fish_complete_directories)'";
      else if (StartsWith(kind, "words:"))
        out << " -x -a " << FishQuote(kind.substr(6));
      else if (kind == "any")
        out << " -x";
      out << " -d " << FishQuote(o.description) << "\n";
    }
    std::string kind = PositionalKind(*e.cmd);
    if (kind == "file")
      out << "complete -c sloth-runner " << at << " -F\n";
    else if (kind == "dir")
      out << "complete -c sloth-runner " << at << " -a '(__fish_complete_directories)'\n";
    else if (StartsWith(kind, "words:"))
      out << "complete -c sloth-runner " << at << " -a " << FishQuote(kind.substr(6)) << "\n";
  }
  return out.str();
}

}  // namespace

int CmdCompletion(const CommandInfo& root, const std::string& shell) {
  if (shell == "bash")
    std::cout << Bash(root);
  else if (shell == "zsh")
    std::cout << Zsh(root);
  else if (shell == "fish")
    std::cout << Fish(root);
  else
    return Fail(kExitBadInput, "unknown shell \"" + shell + "\" (bash, zsh or fish)");
  return kExitOk;
}

}  // namespace sloth
