// UUIDs from the kernel's random source.
#include "base/ids.h"

#include <sys/random.h>

#include <cstdint>
#include <cstdio>
#include <random>

namespace sloth {

std::string NewUuid() {
  uint8_t b[16] = {};
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

std::string NewUuidV7(int64_t unix_ms) {
  thread_local std::mt19937_64 rng = [] {
    uint64_t seed[2] = {};
    size_t got = 0;
    while (got < sizeof seed) {
      ssize_t n = getrandom(reinterpret_cast<char*>(seed) + got, sizeof seed - got, 0);
      if (n > 0) got += static_cast<size_t>(n);
    }
    std::seed_seq seq{seed[0], seed[0] >> 32, seed[1], seed[1] >> 32};
    return std::mt19937_64(seq);
  }();
  uint64_t r1 = rng(), r2 = rng();
  uint8_t b[16];
  uint64_t ms = static_cast<uint64_t>(unix_ms);
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  for (int i = 6; i < 16; ++i) b[i] = static_cast<uint8_t>((i < 8 ? r1 : r2) >> (8 * (i % 8)));
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x70);  // version 7
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC variant
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 0xf];
  }
  return out;
}

}  // namespace sloth
