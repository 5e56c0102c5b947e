#include "rpc/state_remote.h"

#include "sloth/v1/agent.grpc.pb.h"

namespace sloth {
namespace {

namespace v1 = ::sloth::v1;
using nlohmann::json;

json Opt(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }
json Opt(const std::optional<int64_t>& n) { return n ? json(*n) : json(nullptr); }

std::optional<std::string> OptText(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  return j[key].get<std::string>();
}
std::optional<int64_t> OptInt(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  return j[key].get<int64_t>();
}

json EntryJson(const StateEntry& e) {
  return {{"key", e.key}, {"value", e.value}, {"expires_at_ms", Opt(e.expires_at_ms)}};
}
StateEntry EntryFrom(const json& j) {
  return {j.at("key").get<std::string>(), j.at("value").get<std::string>(),
          OptInt(j, "expires_at_ms")};
}
json LockJson(const LockInfo& l) {
  return {{"name", l.name},
          {"owner", l.owner},
          {"host", l.host},
          {"pid", l.pid},
          {"token", l.token},
          {"expires_at_ms", l.expires_at_ms},
          {"acquired_at_ms", l.acquired_at_ms}};
}
LockInfo LockFrom(const json& j) {
  LockInfo l;
  l.name = j.value("name", "");
  l.owner = j.value("owner", "");
  l.host = j.value("host", "");
  l.pid = j.value("pid", int64_t{0});
  l.token = j.value("token", int64_t{0});
  l.expires_at_ms = j.value("expires_at_ms", int64_t{0});
  l.acquired_at_ms = j.value("acquired_at_ms", int64_t{0});
  return l;
}

// Turns a store result into the reply's JSON with `make`.
template <typename T, typename Make>
Result<json> Reply(Result<T> r, Make make) {
  if (!r.ok()) return r.status();
  return make(*r);
}

using Handler = std::function<Result<json>(StateStore&, const json&)>;

const std::unordered_map<std::string, Handler>& Handlers() {
  static const std::unordered_map<std::string, Handler> handlers = {
      {"get",
       [](StateStore& s, const json& a) {
         return Reply(s.Get(a.at("key")), [](auto& v) { return json{{"value", Opt(v)}}; });
       }},
      {"set",
       [](StateStore& s, const json& a) -> Result<json> {
         Status st = s.Set(a.at("key"), a.at("value"), OptInt(a, "ttl_ms"));
         if (!st.ok()) return st;
         return json::object();
       }},
      {"delete",
       [](StateStore& s, const json& a) {
         return Reply(s.Delete(a.at("key")), [](bool ok) { return json{{"ok", ok}}; });
       }},
      {"exists",
       [](StateStore& s, const json& a) {
         return Reply(s.Exists(a.at("key")), [](bool ok) { return json{{"ok", ok}}; });
       }},
      {"set_ttl",
       [](StateStore& s, const json& a) {
         return Reply(s.SetTtl(a.at("key"), OptInt(a, "ttl_ms")), [](bool ok) {
           return json{{"ok", ok}};
         });
       }},
      {"get_entry",
       [](StateStore& s, const json& a) {
         return Reply(s.GetEntry(a.at("key")), [](auto& e) {
           return json{{"entry", e ? EntryJson(*e) : json(nullptr)}};
         });
       }},
      {"list",
       [](StateStore& s, const json& a) {
         return Reply(s.List(a.at("prefix")), [](auto& entries) {
           json out = json::array();
           for (const StateEntry& e : entries) out.push_back(EntryJson(e));
           return json{{"entries", out}};
         });
       }},
      {"clear",
       [](StateStore& s, const json& a) {
         return Reply(s.Clear(a.at("prefix")), [](int64_t n) { return json{{"n", n}}; });
       }},
      {"stats",
       [](StateStore& s, const json&) {
         return Reply(s.Stats(), [](const StateStats& st) {
           return json{{"keys", st.keys},
                       {"expired", st.expired},
                       {"value_bytes", st.value_bytes},
                       {"locks_held", st.locks_held}};
         });
       }},
      {"increment",
       [](StateStore& s, const json& a) {
         return Reply(s.Increment(a.at("key"), a.at("delta")), [](auto& v) {
           return json{{"value", v}};
         });
       }},
      {"compare_swap",
       [](StateStore& s, const json& a) {
         return Reply(s.CompareSwap(a.at("key"), OptText(a, "expected"), OptText(a, "desired")),
                      [](bool ok) {
                        return json{{"ok", ok}};
                      });
       }},
      {"append",
       [](StateStore& s, const json& a) {
         return Reply(s.Append(a.at("key"), a.at("text")), [](auto& v) {
           return json{{"value", v}};
         });
       }},
      {"list_push",
       [](StateStore& s, const json& a) {
         return Reply(s.ListPush(a.at("key"), a.at("value")), [](int64_t n) {
           return json{{"n", n}};
         });
       }},
      {"list_pop",
       [](StateStore& s, const json& a) {
         return Reply(s.ListPop(a.at("key")), [](auto& v) { return json{{"value", Opt(v)}}; });
       }},
      {"list_peek",
       [](StateStore& s, const json& a) {
         return Reply(s.ListPeek(a.at("key")), [](auto& v) { return json{{"value", Opt(v)}}; });
       }},
      {"list_length",
       [](StateStore& s, const json& a) {
         return Reply(s.ListLength(a.at("key")), [](int64_t n) { return json{{"n", n}}; });
       }},
      {"try_lock",
       [](StateStore& s, const json& a) {
         LockOwner owner{a.at("owner"), a.at("host"), a.at("pid")};
         return Reply(s.TryLock(a.at("name"), owner, a.at("ttl_ms")), [](const LockAttempt& t) {
           return json{
               {"acquired", t.acquired}, {"token", t.token}, {"holder", LockJson(t.holder)}};
         });
       }},
      {"renew_lock",
       [](StateStore& s, const json& a) {
         return Reply(s.RenewLock(a.at("name"), a.at("token"), a.at("ttl_ms")), [](bool ok) {
           return json{{"ok", ok}};
         });
       }},
      {"unlock",
       [](StateStore& s, const json& a) {
         return Reply(s.Unlock(a.at("name"), a.at("token")), [](bool ok) {
           return json{{"ok", ok}};
         });
       }},
      {"lock_holder",
       [](StateStore& s, const json& a) {
         return Reply(s.LockHolder(a.at("name")), [](auto& h) {
           return json{{"holder", h ? LockJson(*h) : json(nullptr)}};
         });
       }},
      {"force_unlock",
       [](StateStore& s, const json& a) {
         return Reply(s.ForceUnlock(a.at("name")), [](bool ok) { return json{{"ok", ok}}; });
       }},
  };
  return handlers;
}

// One JSON call on the master (State or Stack), its reply decoded without exceptions.
class RemoteCaller {
 public:
  using Rpc = grpc::Status (v1::Master::Stub::*)(grpc::ClientContext*, const v1::StateCall&,
                                                 v1::StateReply*);
  RemoteCaller(std::shared_ptr<grpc::Channel> channel, Rpc rpc, std::string what)
      : stub_(v1::Master::NewStub(channel)), rpc_(rpc), what_(std::move(what)) {}

  Result<json> Call(const std::string& method, const json& args) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::StateCall req;
    req.set_method(method);
    req.set_args_json(args.dump());
    v1::StateReply reply;
    grpc::Status s = ((*stub_).*rpc_)(&ctx, req, &reply);
    if (!s.ok()) return Status::Error(what_ + ": " + s.error_message());
    if (!reply.error().empty()) return Status::Error(reply.error());
    json r = json::parse(reply.result_json(), nullptr, false);
    if (!r.is_object()) return Status::Error(what_ + " sent an unreadable reply");
    return r;
  }
  // Decodes a reply; a reply of the wrong shape is an error, not an exception.
  template <typename Fn>
  auto Map(Result<json> r, Fn fn) -> Result<decltype(fn(std::declval<const json&>()))> {
    if (!r.ok()) return r.status();
    try {
      return fn(*r);
    } catch (const json::exception& e) {
      return Status::Error(what_ + " sent a bad reply: " + e.what());
    }
  }

 private:
  std::unique_ptr<v1::Master::Stub> stub_;
  Rpc rpc_;
  std::string what_;
};

class RemoteStateStore final : public StateStore {
 public:
  explicit RemoteStateStore(std::shared_ptr<grpc::Channel> channel)
      : caller_(channel, &v1::Master::Stub::State, "the master's state store") {}

  Result<std::optional<std::string>> Get(const std::string& key) override {
    return Map(Call("get", {{"key", key}}), [](const json& r) { return OptText(r, "value"); });
  }
  Status Set(const std::string& key, const std::string& value,
             std::optional<int64_t> ttl_ms) override {
    return Call("set", {{"key", key}, {"value", value}, {"ttl_ms", Opt(ttl_ms)}}).status();
  }
  Result<bool> Delete(const std::string& key) override { return Bool("delete", {{"key", key}}); }
  Result<bool> Exists(const std::string& key) override { return Bool("exists", {{"key", key}}); }
  Result<bool> SetTtl(const std::string& key, std::optional<int64_t> ttl_ms) override {
    return Bool("set_ttl", {{"key", key}, {"ttl_ms", Opt(ttl_ms)}});
  }
  Result<std::optional<StateEntry>> GetEntry(const std::string& key) override {
    return Map(Call("get_entry", {{"key", key}}), [](const json& r) {
      return r["entry"].is_null() ? std::optional<StateEntry>() : EntryFrom(r["entry"]);
    });
  }
  Result<std::vector<StateEntry>> List(const std::string& prefix) override {
    return Map(Call("list", {{"prefix", prefix}}), [](const json& r) {
      std::vector<StateEntry> out;
      for (const json& e : r.at("entries")) out.push_back(EntryFrom(e));
      return out;
    });
  }
  Result<int64_t> Clear(const std::string& prefix) override {
    return Int("clear", {{"prefix", prefix}});
  }
  Result<StateStats> Stats() override {
    return Map(Call("stats", json::object()), [](const json& r) {
      return StateStats{r.at("keys"), r.at("expired"), r.at("value_bytes"), r.at("locks_held")};
    });
  }
  Result<std::string> Increment(const std::string& key, const std::string& delta) override {
    return Text("increment", {{"key", key}, {"delta", delta}});
  }
  Result<bool> CompareSwap(const std::string& key, const std::optional<std::string>& expected,
                           const std::optional<std::string>& desired) override {
    return Bool("compare_swap",
                {{"key", key}, {"expected", Opt(expected)}, {"desired", Opt(desired)}});
  }
  Result<std::string> Append(const std::string& key, const std::string& text) override {
    return Text("append", {{"key", key}, {"text", text}});
  }
  Result<int64_t> ListPush(const std::string& key, const std::string& value) override {
    return Int("list_push", {{"key", key}, {"value", value}});
  }
  Result<std::optional<std::string>> ListPop(const std::string& key) override {
    return Map(Call("list_pop", {{"key", key}}), [](const json& r) { return OptText(r, "value"); });
  }
  Result<std::optional<std::string>> ListPeek(const std::string& key) override {
    return Map(Call("list_peek", {{"key", key}}),
               [](const json& r) { return OptText(r, "value"); });
  }
  Result<int64_t> ListLength(const std::string& key) override {
    return Int("list_length", {{"key", key}});
  }
  Result<LockAttempt> TryLock(const std::string& name, const LockOwner& owner,
                              int64_t ttl_ms) override {
    json args = {{"name", name},
                 {"owner", owner.owner},
                 {"host", owner.host},
                 {"pid", owner.pid},
                 {"ttl_ms", ttl_ms}};
    return Map(Call("try_lock", args), [](const json& r) {
      return LockAttempt{r.at("acquired"), r.at("token"), LockFrom(r.at("holder"))};
    });
  }
  Result<bool> RenewLock(const std::string& name, int64_t token, int64_t ttl_ms) override {
    return Bool("renew_lock", {{"name", name}, {"token", token}, {"ttl_ms", ttl_ms}});
  }
  Result<bool> Unlock(const std::string& name, int64_t token) override {
    return Bool("unlock", {{"name", name}, {"token", token}});
  }
  Result<std::optional<LockInfo>> LockHolder(const std::string& name) override {
    return Map(Call("lock_holder", {{"name", name}}), [](const json& r) {
      return r["holder"].is_null() ? std::optional<LockInfo>() : LockFrom(r["holder"]);
    });
  }
  Result<bool> ForceUnlock(const std::string& name) override {
    return Bool("force_unlock", {{"name", name}});
  }

 private:
  Result<json> Call(const std::string& method, const json& args) {
    return caller_.Call(method, args);
  }
  template <typename Fn>
  auto Map(Result<json> r, Fn fn) -> Result<decltype(fn(std::declval<const json&>()))> {
    return caller_.Map(std::move(r), fn);
  }
  Result<bool> Bool(const std::string& m, const json& a) {
    return Map(Call(m, a), [](const json& r) { return r.at("ok").get<bool>(); });
  }
  Result<int64_t> Int(const std::string& m, const json& a) {
    return Map(Call(m, a), [](const json& r) { return r.at("n").get<int64_t>(); });
  }
  Result<std::string> Text(const std::string& m, const json& a) {
    return Map(Call(m, a), [](const json& r) { return r.at("value").get<std::string>(); });
  }

  RemoteCaller caller_;
};

// --- stack.* ----------------------------------------------------------------------------------

json StackJson(const StackInfo& st) {
  return {{"id", st.id},
          {"name", st.name},
          {"description", st.description},
          {"workflow_file", st.workflow_file},
          {"status", st.status},
          {"outputs_json", st.outputs_json},
          {"created_at_ms", st.created_at_ms},
          {"updated_at_ms", st.updated_at_ms}};
}
StackInfo StackFrom(const json& j) {
  StackInfo st;
  st.id = j.at("id");
  st.name = j.at("name");
  st.description = j.value("description", "");
  st.workflow_file = j.value("workflow_file", "");
  st.status = j.value("status", "created");
  st.outputs_json = j.value("outputs_json", "{}");
  st.created_at_ms = j.value("created_at_ms", int64_t{0});
  st.updated_at_ms = j.value("updated_at_ms", int64_t{0});
  return st;
}
json ResourceJson(const ResourceRecord& r) {
  return {{"type", r.type},
          {"name", r.name},
          {"module", r.module},
          {"properties_json", r.properties_json},
          {"dependencies_json", r.dependencies_json},
          {"state", r.state},
          {"attributes_json", r.attributes_json},
          {"run_id", r.run_id},
          {"created_at_ms", r.created_at_ms},
          {"updated_at_ms", r.updated_at_ms}};
}
ResourceRecord ResourceFrom(const json& j) {
  ResourceRecord r;
  r.type = j.at("type");
  r.name = j.at("name");
  r.module = j.value("module", "");
  r.properties_json = j.value("properties_json", "{}");
  r.dependencies_json = j.value("dependencies_json", "[]");
  r.state = j.value("state", "pending");
  r.attributes_json = j.value("attributes_json", "{}");
  r.run_id = j.value("run_id", "");
  r.created_at_ms = j.value("created_at_ms", int64_t{0});
  r.updated_at_ms = j.value("updated_at_ms", int64_t{0});
  return r;
}

using StackHandler = std::function<Result<json>(StackStore&, const json&)>;

const std::unordered_map<std::string, StackHandler>& StackHandlers() {
  static const std::unordered_map<std::string, StackHandler> handlers = {
      {"find_stack",
       [](StackStore& s, const json& a) {
         return Reply(s.FindStack(a.at("name")), [](auto& st) {
           return json{{"stack", st ? StackJson(*st) : json(nullptr)}};
         });
       }},
      {"merge_outputs",
       [](StackStore& s, const json& a) -> Result<json> {
         Status st = s.MergeOutputs(a.at("stack_id"), a.at("outputs_json"));
         if (!st.ok()) return st;
         return json::object();
       }},
      {"get_resource",
       [](StackStore& s, const json& a) {
         return Reply(s.GetResource(a.at("stack_id"), a.at("type"), a.at("name")), [](auto& r) {
           return json{{"resource", r ? ResourceJson(*r) : json(nullptr)}};
         });
       }},
      {"put_resource",
       [](StackStore& s, const json& a) -> Result<json> {
         Status st = s.PutResource(a.at("stack_id"), ResourceFrom(a.at("resource")));
         if (!st.ok()) return st;
         return json::object();
       }},
      {"delete_resource",
       [](StackStore& s, const json& a) {
         return Reply(s.DeleteResource(a.at("stack_id"), a.at("type"), a.at("name")), [](bool ok) {
           return json{{"ok", ok}};
         });
       }},
      {"list_resources",
       [](StackStore& s, const json& a) {
         return Reply(s.ListResources(a.at("stack_id")), [](auto& all) {
           json out = json::array();
           for (const ResourceRecord& r : all) out.push_back(ResourceJson(r));
           return json{{"resources", out}};
         });
       }},
  };
  return handlers;
}

class RemoteStackStore final : public StackStore {
 public:
  explicit RemoteStackStore(std::shared_ptr<grpc::Channel> channel)
      : caller_(channel, &v1::Master::Stub::Stack, "the master's stack store") {}

  Result<std::optional<StackInfo>> FindStack(const std::string& name) override {
    return caller_.Map(caller_.Call("find_stack", {{"name", name}}), [](const json& r) {
      return r.at("stack").is_null() ? std::optional<StackInfo>() : StackFrom(r.at("stack"));
    });
  }
  Status MergeOutputs(const std::string& stack_id, const std::string& outputs_json) override {
    return caller_.Call("merge_outputs", {{"stack_id", stack_id}, {"outputs_json", outputs_json}})
        .status();
  }
  Result<std::optional<ResourceRecord>> GetResource(const std::string& stack_id,
                                                    const std::string& type,
                                                    const std::string& name) override {
    json args = {{"stack_id", stack_id}, {"type", type}, {"name", name}};
    return caller_.Map(caller_.Call("get_resource", args), [](const json& r) {
      return r.at("resource").is_null() ? std::optional<ResourceRecord>()
                                        : ResourceFrom(r.at("resource"));
    });
  }
  Status PutResource(const std::string& stack_id, const ResourceRecord& resource) override {
    return caller_
        .Call("put_resource", {{"stack_id", stack_id}, {"resource", ResourceJson(resource)}})
        .status();
  }
  Result<bool> DeleteResource(const std::string& stack_id, const std::string& type,
                              const std::string& name) override {
    json args = {{"stack_id", stack_id}, {"type", type}, {"name", name}};
    return caller_.Map(caller_.Call("delete_resource", args),
                       [](const json& r) { return r.at("ok").get<bool>(); });
  }
  Result<std::vector<ResourceRecord>> ListResources(const std::string& stack_id) override {
    return caller_.Map(caller_.Call("list_resources", {{"stack_id", stack_id}}), [](const json& r) {
      std::vector<ResourceRecord> out;
      for (const json& one : r.at("resources")) out.push_back(ResourceFrom(one));
      return out;
    });
  }

  // Managing stacks is the runner's and the CLI's business, not a delegated task's.
  Result<StackInfo> CreateStack(const std::string&, const std::string&,
                                const std::string&) override {
    return NotHere("create a stack");
  }
  Result<StackInfo> EnsureStack(const std::string&, const std::string&) override {
    return NotHere("create a stack");
  }
  Status ImportStack(const StackInfo&) override { return NotHere("import a stack"); }
  Result<std::vector<StackInfo>> ListStacks() override { return NotHere("list stacks"); }
  Result<bool> DeleteStack(const std::string&) override { return NotHere("delete a stack"); }
  Status SetStackStatus(const std::string&, const std::string&) override {
    return NotHere("set a stack's status");
  }

 private:
  static Status NotHere(const std::string& what) {
    return Status::Error("a delegated task cannot " + what + " (the runner manages its stack)");
  }
  RemoteCaller caller_;
};

}  // namespace

std::unique_ptr<StateStore> MakeRemoteStateStore(std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<RemoteStateStore>(std::move(channel));
}

Result<json> ServeStateCall(StateStore& store, const std::string& method, const json& args) {
  auto it = Handlers().find(method);
  if (it == Handlers().end()) return Status::Error("unknown state call \"" + method + "\"");
  if (!args.is_object()) return Status::Error("state call arguments must be an object");
  try {
    return it->second(store, args);
  } catch (const json::exception& e) {
    return Status::Error("bad arguments for state call " + method + ": " + e.what());
  }
}

}  // namespace sloth

namespace sloth {

std::unique_ptr<StackStore> MakeRemoteStackStore(std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<RemoteStackStore>(std::move(channel));
}

Result<json> ServeStackCall(StackStore& store, const std::string& method, const json& args) {
  auto it = StackHandlers().find(method);
  if (it == StackHandlers().end()) return Status::Error("unknown stack call \"" + method + "\"");
  if (!args.is_object()) return Status::Error("stack call arguments must be an object");
  try {
    return it->second(store, args);
  } catch (const json::exception& e) {
    return Status::Error("bad arguments for stack call " + method + ": " + e.what());
  }
}

}  // namespace sloth
