// The master's registry and the state dispatcher, on real SQLite files.
#include <gtest/gtest.h>

#include <filesystem>

#include <grpcpp/generic/generic_stub.h>
#include "core/state_store.h"

#include <condition_variable>
#include <mutex>

#include "rpc/agent_registry.h"
#include "rpc/credentials.h"
#include "rpc/master.h"
#include "rpc/pki.h"
#include "rpc/state_remote.h"
#include "sloth/v1/agent.grpc.pb.h"
#include "store/migrations.h"
#include "store/sqlite_stack_store.h"
#include "store/sqlite_state_store.h"

namespace sloth {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::sloth::v1;

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "sloth-rpc-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    auto db = OpenDatabase(dir_ + "/sloth.db");
    ASSERT_TRUE(db.ok()) << db.error();
    db_ = *db;
    registry_ = std::make_unique<AgentRegistry>(db_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_;
  std::shared_ptr<Db> db_;
  std::unique_ptr<AgentRegistry> registry_;
};

TEST_F(RegistryTest, ATokenEnrolsOneAgentOnce) {
  ASSERT_TRUE(registry_->AddToken("abcd1234", "s3cret", NowUnixMs() + 60000).ok());
  ASSERT_TRUE(registry_->Enroll("abcd1234", "s3cret", "web-01", "fp1").ok());
  Status again = registry_->Enroll("abcd1234", "s3cret", "web-02", "fp2");
  EXPECT_EQ(again.message(), "join token already used");
  auto agent = registry_->Get("web-01");
  ASSERT_TRUE(agent.ok());
  EXPECT_EQ(agent->fingerprint, "fp1");
  EXPECT_FALSE(registry_->Get("web-02").ok());
}

TEST_F(RegistryTest, WrongSecretUnknownIdAndExpiryAreRefused) {
  ASSERT_TRUE(registry_->AddToken("abcd1234", "s3cret", NowUnixMs() + 60000).ok());
  ASSERT_TRUE(registry_->AddToken("old00000", "s3cret", NowUnixMs() - 1).ok());
  EXPECT_EQ(registry_->Enroll("abcd1234", "guess", "a", "f").message(), "unknown join token");
  EXPECT_EQ(registry_->Enroll("zzzz9999", "s3cret", "a", "f").message(), "unknown join token");
  EXPECT_EQ(registry_->Enroll("old00000", "s3cret", "a", "f").message(), "join token expired");
  // A refused attempt does not use the token up.
  EXPECT_TRUE(registry_->Enroll("abcd1234", "s3cret", "a", "f").ok());
}

TEST_F(RegistryTest, ATakenNameIsRefusedAndTheTokenStaysUnused) {
  ASSERT_TRUE(registry_->AddToken("aaaa0000", "one", NowUnixMs() + 60000).ok());
  ASSERT_TRUE(registry_->AddToken("bbbb0000", "two", NowUnixMs() + 60000).ok());
  ASSERT_TRUE(registry_->Enroll("aaaa0000", "one", "web", "fp1").ok());
  EXPECT_EQ(registry_->Enroll("bbbb0000", "two", "web", "fp2").message(),
            "agent name web is taken");
  EXPECT_TRUE(registry_->Enroll("bbbb0000", "two", "db", "fp2").ok());
}

TEST_F(RegistryTest, DeleteRevokesTheCertificateForGood) {
  ASSERT_TRUE(registry_->AddToken("aaaa0000", "one", NowUnixMs() + 60000).ok());
  ASSERT_TRUE(registry_->Enroll("aaaa0000", "one", "web", "fp1").ok());
  ASSERT_TRUE(registry_->Delete("web").ok());
  EXPECT_FALSE(registry_->Get("web").ok());
  auto revoked = registry_->RevokedFingerprints();
  ASSERT_TRUE(revoked.ok());
  EXPECT_EQ(revoked->count("fp1"), 1u);
  EXPECT_FALSE(registry_->Delete("web").ok());
}

TEST_F(RegistryTest, SeenStateIsKept) {
  ASSERT_TRUE(registry_->AddToken("aaaa0000", "one", NowUnixMs() + 60000).ok());
  ASSERT_TRUE(registry_->Enroll("aaaa0000", "one", "web", "fp1").ok());
  AgentRecord r = *registry_->Get("web");
  r.address = "10.0.0.5";
  r.labels_json = R"({"role":"web"})";
  r.last_heartbeat_ms = 42;
  ASSERT_TRUE(registry_->UpdateSeen(r).ok());
  auto all = registry_->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].address, "10.0.0.5");
  EXPECT_EQ((*all)[0].labels_json, R"({"role":"web"})");
  EXPECT_EQ((*all)[0].last_heartbeat_ms, 42);
}

class StateCallTest : public RegistryTest {
 protected:
  void SetUp() override {
    RegistryTest::SetUp();
    store_ = std::make_unique<SqliteStateStore>(db_);
  }
  nlohmann::json Call(const std::string& method, const nlohmann::json& args) {
    auto r = ServeStateCall(*store_, method, args);
    EXPECT_TRUE(r.ok()) << method << ": " << r.error();
    return r.ok() ? *r : nlohmann::json();
  }
  std::unique_ptr<SqliteStateStore> store_;
};

TEST_F(StateCallTest, CallsReachTheStore) {
  Call("set", {{"key", "k"}, {"value", "\"v\""}, {"ttl_ms", nullptr}});
  EXPECT_EQ(Call("get", {{"key", "k"}})["value"], "\"v\"");
  EXPECT_TRUE(Call("get", {{"key", "absent"}})["value"].is_null());
  EXPECT_EQ(Call("increment", {{"key", "n"}, {"delta", "2"}})["value"], "2");
  EXPECT_EQ(Call("list_push", {{"key", "l"}, {"value", "1"}})["n"], 1);
  EXPECT_EQ(Call("list", {{"prefix", ""}})["entries"].size(), 3u);
  nlohmann::json lock = Call(
      "try_lock", {{"name", "L"}, {"owner", "o"}, {"host", "h"}, {"pid", 1}, {"ttl_ms", 60000}});
  EXPECT_TRUE(lock["acquired"].get<bool>());
  nlohmann::json second = Call(
      "try_lock", {{"name", "L"}, {"owner", "p"}, {"host", "h2"}, {"pid", 2}, {"ttl_ms", 60000}});
  EXPECT_FALSE(second["acquired"].get<bool>());
  EXPECT_EQ(second["holder"]["owner"], "o");
  EXPECT_TRUE(Call("unlock", {{"name", "L"}, {"token", lock["token"]}})["ok"].get<bool>());
}

TEST_F(StateCallTest, BadCallsAreErrorsNotCrashes) {
  EXPECT_FALSE(ServeStateCall(*store_, "drop_tables", nlohmann::json::object()).ok());
  EXPECT_FALSE(ServeStateCall(*store_, "get", nlohmann::json::object()).ok());
  EXPECT_FALSE(ServeStateCall(*store_, "get", {{"key", 5}}).ok());
  EXPECT_FALSE(ServeStateCall(*store_, "set", nlohmann::json::array()).ok());
  EXPECT_FALSE(ServeStateCall(*store_, "try_lock", {{"name", "L"}}).ok());
}

TEST_F(StateCallTest, StackCallsReachTheStoreAndBadOnesAreErrors) {
  SqliteStackStore stacks(db_);
  auto stack = stacks.EnsureStack("prod", "");
  ASSERT_TRUE(stack.ok());
  nlohmann::json resource = {{"type", "vm"}, {"name", "web"}, {"properties_json", "{}"}};
  auto put =
      ServeStackCall(stacks, "put_resource", {{"stack_id", stack->id}, {"resource", resource}});
  ASSERT_TRUE(put.ok()) << put.error();
  auto got = ServeStackCall(stacks, "get_resource",
                            {{"stack_id", stack->id}, {"type", "vm"}, {"name", "web"}});
  ASSERT_TRUE(got.ok()) << got.error();
  EXPECT_EQ((*got)["resource"]["name"], "web");
  auto found = ServeStackCall(stacks, "find_stack", {{"name", "prod"}});
  ASSERT_TRUE(found.ok());
  EXPECT_EQ((*found)["stack"]["id"], stack->id);
  EXPECT_FALSE(ServeStackCall(stacks, "delete_stack", {{"name", "prod"}}).ok());
  EXPECT_FALSE(ServeStackCall(stacks, "put_resource", {{"stack_id", stack->id}}).ok());
  EXPECT_FALSE(ServeStackCall(stacks, "get_resource", nlohmann::json::array()).ok());
}

}  // namespace
}  // namespace sloth

// --- A real master on 127.0.0.1, in this process, with raw gRPC clients -----------------------

namespace sloth {
namespace {

namespace v1 = ::sloth::v1;

class MasterTest : public RegistryTest {
 protected:
  void SetUp() override {
    RegistryTest::SetUp();
    MasterStartOptions options;
    options.data_dir = dir_;
    options.port = 0;
    options.bind = "127.0.0.1";
    testing::internal::CaptureStdout();  // "listening on 127.0.0.1:PORT"
    auto server = StartMaster(options);
    std::string out = testing::internal::GetCapturedStdout();
    ASSERT_TRUE(server.ok()) << server.error();
    server_ = std::move(*server);
    size_t colon = out.rfind(':');
    ASSERT_NE(colon, std::string::npos) << out;
    address_ = "127.0.0.1:" + std::to_string(std::atoi(out.c_str() + colon + 1));
  }
  void TearDown() override {
    server_.reset();
    RegistryTest::TearDown();
  }
  // An admin channel that would send anything (no client-side size limit).
  std::shared_ptr<grpc::Channel> Admin() {
    std::string dir = ClusterDir(dir_);
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(kMasterCertName);
    args.SetMaxSendMessageSize(-1);
    auto creds = TlsCredentials(*ReadTextFile(dir + "/ca.crt"), *ReadTextFile(dir + "/admin.key"),
                                *ReadTextFile(dir + "/admin.crt"));
    return grpc::CreateCustomChannel(address_, creds, args);
  }
  grpc::Status CallState(const std::shared_ptr<grpc::Channel>& channel, const std::string& args) {
    auto stub = v1::Master::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::StateCall req;
    req.set_method("set");
    req.set_args_json(args);
    v1::StateReply reply;
    return stub->State(&ctx, req, &reply);
  }

  std::unique_ptr<MasterServer> server_;
  std::string address_;
};

TEST_F(MasterTest, AnOversizedMessageIsRefusedAndOthersAreServed) {
  auto channel = Admin();
  std::string big = R"({"key":"k","value":")" + std::string(kMaxMessageBytes + 1024, 'x') + "\"}";
  grpc::Status s = CallState(channel, big);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_TRUE(CallState(Admin(), R"({"key":"k","value":"1"})").ok());
}

TEST_F(MasterTest, AMalformedMessageIsRefusedAndOthersAreServed) {
  grpc::GenericStub generic(Admin());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice garbage(std::string("\xff\xff\xff\xff not protobuf", 17));
  grpc::ByteBuffer request(&garbage, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/sloth.v1.Master/State", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      std::lock_guard lock(mu);
                      status = s;
                      done = true;
                      cv.notify_all();
                    });
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(15), [&] { return done; }));
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(CallState(Admin(), R"({"key":"k","value":"1"})").ok());
}

TEST_F(MasterTest, CallsWithoutTheRightCertificateAreRefused) {
  // TLS that trusts the cluster but shows no client certificate: enrolment only.
  std::string ca = *ReadTextFile(ClusterDir(dir_) + "/ca.crt");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(kMasterCertName);
  auto anonymous = grpc::CreateCustomChannel(address_, TlsCredentials(ca, "", ""), args);
  EXPECT_EQ(CallState(anonymous, R"({"key":"k","value":"1"})").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // A certificate from another CA fails the TLS handshake.
  auto other_ca = pki::CreateCa("other");
  ASSERT_TRUE(other_ca.ok());
  auto forged = pki::Issue(*other_ca, "admin", "admin", {}, 1);
  ASSERT_TRUE(forged.ok());
  auto stranger = grpc::CreateCustomChannel(
      address_, TlsCredentials(ca, forged->key_pem, forged->cert_pem), args);
  EXPECT_FALSE(CallState(stranger, R"({"key":"k","value":"1"})").ok());
  EXPECT_TRUE(CallState(Admin(), R"({"key":"k","value":"1"})").ok());
}

TEST_F(MasterTest, AnAgentCertificateCannotMakeAdminCalls) {
  auto ca = LoadCa(dir_);
  ASSERT_TRUE(ca.ok());
  auto agent = pki::Issue(*ca, "web-01", "agent", {}, 1);
  ASSERT_TRUE(agent.ok());
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(kMasterCertName);
  auto channel = grpc::CreateCustomChannel(
      address_, TlsCredentials(ca->cert_pem, agent->key_pem, agent->cert_pem), args);
  auto stub = v1::Master::NewStub(channel);
  grpc::ClientContext ctx;
  v1::CreateTokenRequest req;
  v1::CreateTokenResponse resp;
  EXPECT_EQ(stub->CreateToken(&ctx, req, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace sloth
