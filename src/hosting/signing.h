// The host's Ed25519 statement key (libsodium): closed statements carry a signature of their
// digest, so a licensor can check a statement it did not compute.
#pragma once
#include <string>

#include "core/status.h"

namespace corral {

struct SigningKey {
  std::string public_hex;  // 32 bytes
  std::string secret_hex;  // 64 bytes (seed and public key, libsodium's layout)
};

Expected<SigningKey> generate_signing_key();
// A key file holds the secret key in hex (written 0600 by `corral statement keygen`).
Expected<SigningKey> read_signing_key(const std::string& path);
Expected<std::string> sign_hex(const SigningKey& k, const std::string& message);
// false when the signature does not match; an error when the key or signature is malformed.
Expected<bool> verify_hex(const std::string& public_hex, const std::string& message,
                          const std::string& signature_hex);

}  // namespace corral
