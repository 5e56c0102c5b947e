// libssh, loaded on first use: linking it (and the Kerberos libraries it pulls in) would cost
// every sloth-runner start a millisecond or two of dynamic loading, and most runs never use SSH.
#pragma once

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include "base/status.h"

namespace sloth {

// Every libssh function the ssh module calls. One list, so the table and its resolution
// cannot drift apart.
#define SLOTH_SSH_FUNCTIONS(X)       \
  X(ssh_new)                         \
  X(ssh_free)                        \
  X(ssh_options_set)                 \
  X(ssh_connect)                     \
  X(ssh_disconnect)                  \
  X(ssh_get_error)                   \
  X(ssh_session_is_known_server)     \
  X(ssh_get_server_publickey)        \
  X(ssh_get_publickey_hash)          \
  X(ssh_get_fingerprint_hash)        \
  X(ssh_string_free_char)            \
  X(ssh_clean_pubkey_hash)           \
  X(ssh_key_free)                    \
  X(ssh_pki_import_privkey_file)     \
  X(ssh_userauth_publickey)          \
  X(ssh_userauth_password)           \
  X(ssh_userauth_agent)              \
  X(ssh_userauth_publickey_auto)     \
  X(ssh_channel_new)                 \
  X(ssh_channel_free)                \
  X(ssh_channel_open_session)        \
  X(ssh_channel_request_exec)        \
  X(ssh_channel_request_send_signal) \
  X(ssh_channel_read_timeout)        \
  X(ssh_channel_read_nonblocking)    \
  X(ssh_channel_write)               \
  X(ssh_channel_send_eof)            \
  X(ssh_channel_is_eof)              \
  X(ssh_channel_is_closed)           \
  X(ssh_channel_get_exit_status)     \
  X(ssh_channel_close)               \
  X(sftp_new)                        \
  X(sftp_init)                       \
  X(sftp_free)                       \
  X(sftp_get_error)                  \
  X(sftp_open)                       \
  X(sftp_read)                       \
  X(sftp_write)                      \
  X(sftp_close)                      \
  X(sftp_stat)                       \
  X(sftp_attributes_free)            \
  X(sftp_chmod)                      \
  X(sftp_rename)                     \
  X(sftp_unlink)

// The functions above, resolved from libssh.so.4; each member is named like its function.
struct SshApi {
#define SLOTH_SSH_MEMBER(name) decltype(&::name) name = nullptr;
  SLOTH_SSH_FUNCTIONS(SLOTH_SSH_MEMBER)
#undef SLOTH_SSH_MEMBER
};

// Loads libssh and runs ssh_init once per process (thread-safe). Fails with "cannot load
// libssh.so.4 (...apt-get install libssh-4): ..." when the library or a function is missing.
Result<const SshApi*> LoadSsh();

}  // namespace sloth
