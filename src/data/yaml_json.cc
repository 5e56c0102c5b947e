// YAML through yaml-cpp, typed by hand: yaml-cpp leaves every scalar a string.
#include "data/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <regex>

namespace sloth {
namespace {

nlohmann::json Convert(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") return node.Scalar();  // quoted: always a string
      return TypedScalar(node.Scalar());
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(Convert(item));
      return out;
    }
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = Convert(kv.second);
      return out;
    }
  }
  return nullptr;
}

// A string that reads back as itself when written plain; anything else is double-quoted
// (yaml-cpp escapes control characters there).
bool PlainSafe(const std::string& s) {
  if (s.empty() || s.front() == ' ' || s.back() == ' ' || !TypedScalar(s).is_string()) return false;
  for (unsigned char c : s)
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '/' || c == ' '))
      return false;
  return std::isalnum(static_cast<unsigned char>(s.front())) || s.front() == '_' ||
         s.front() == '/';
}

constexpr size_t kMaxImplicitKeyBytes = 100;

void EmitString(YAML::Emitter& out, const std::string& s) {
  if (PlainSafe(s))
    out << s;
  else
    out << YAML::DoubleQuoted << s;
}

void Emit(YAML::Emitter& out, const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [k, item] : v.items()) {
        // A plain "key:" may not be longer than 1024 characters once written (escapes can
        // make a byte ten): longer keys are written as explicit "? key" entries.
        if (k.size() > kMaxImplicitKeyBytes) out << YAML::LongKey;
        out << YAML::Key;
        EmitString(out, k);
        out << YAML::Value;
        Emit(out, item);
      }
      out << YAML::EndMap;
      return;
    case nlohmann::json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& item : v) Emit(out, item);
      out << YAML::EndSeq;
      return;
    case nlohmann::json::value_t::string: {
      EmitString(out, v.get_ref<const std::string&>());
      return;
    }
    case nlohmann::json::value_t::null:
      out << YAML::Null;
      return;
    case nlohmann::json::value_t::boolean:
      out << v.get<bool>();
      return;
    case nlohmann::json::value_t::number_float: {
      // Keep a decimal point so that 1.0 reads back as a float, not an integer.
      std::string text = nlohmann::json(v.get<double>()).dump();
      if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
      out << text;
      return;
    }
    default:
      out << v.dump();
      return;
  }
}

}  // namespace

nlohmann::json TypedScalar(const std::string& s) {
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kHex("0x[0-9a-fA-F]+");
  static const std::regex kOct("0o[0-7]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  // strtoll/strtod never throw: out-of-range integers become floats, huge floats +-inf.
  auto as_float = [&] { return std::strtod(s.c_str(), nullptr); };
  auto as_int = [&](const std::string& digits, int base) -> nlohmann::json {
    errno = 0;
    long long v = std::strtoll(digits.c_str(), nullptr, base);
    if (errno == ERANGE) return base == 10 ? nlohmann::json(as_float()) : nlohmann::json(s);
    return static_cast<int64_t>(v);
  };
  if (std::regex_match(s, kInt)) return as_int(s, 10);
  if (std::regex_match(s, kHex)) return as_int(s.substr(2), 16);
  if (std::regex_match(s, kOct)) return as_int(s.substr(2), 8);
  if (std::regex_match(s, kFloat)) return as_float();
  if (s == ".inf" || s == "+.inf" || s == ".Inf") return HUGE_VAL;
  if (s == "-.inf" || s == "-.Inf") return -HUGE_VAL;
  return s;
}

Result<nlohmann::json> ParseYaml(std::string_view text) {
  try {
    return Convert(YAML::Load(std::string(text)));
  } catch (const YAML::Exception& e) {
    return Status::Error("line " + std::to_string(e.mark.line + 1) + ", column " +
                         std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}

std::string ToYaml(const nlohmann::json& value) {
  YAML::Emitter out;
  Emit(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace sloth
