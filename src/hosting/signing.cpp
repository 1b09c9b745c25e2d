#include "hosting/signing.h"

#include <sodium.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace corral {

namespace {

Status init() {
  if (sodium_init() < 0) return make_error("libsodium failed to initialise");
  return Status::ok();
}

std::string to_hex(const unsigned char* p, size_t n) {
  std::string h(n * 2 + 1, '\0');
  sodium_bin2hex(h.data(), h.size(), p, n);
  h.pop_back();
  return h;
}

Expected<std::vector<unsigned char>> from_hex(const std::string& h, size_t n,
                                              const std::string& what) {
  std::vector<unsigned char> b(n);
  size_t got = 0;
  if (h.size() != n * 2 ||
      sodium_hex2bin(b.data(), n, h.data(), h.size(), nullptr, &got, nullptr) != 0 || got != n)
    return make_error(what + " must be " + std::to_string(n * 2) + " hex digits");
  return b;
}

}  // namespace

Expected<SigningKey> generate_signing_key() {
  CORRAL_RETURN_IF_ERROR(init());
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  SigningKey k{to_hex(pk, sizeof pk), to_hex(sk, sizeof sk)};
  sodium_memzero(sk, sizeof sk);
  return k;
}

Expected<SigningKey> read_signing_key(const std::string& path) {
  CORRAL_RETURN_IF_ERROR(init());
  std::ifstream f(path);
  if (!f)
    return make_error(path +
                      ": cannot read the statement signing key (make one with "
                      "'corral statement keygen')");
  std::string hex;
  f >> hex;
  auto sk = from_hex(hex, crypto_sign_SECRETKEYBYTES, path + ": the secret key");
  if (!sk.is_ok()) return make_error(sk.message());
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_ed25519_sk_to_pk(pk, sk->data());
  return SigningKey{to_hex(pk, sizeof pk), hex};
}

Expected<std::string> sign_hex(const SigningKey& k, const std::string& message) {
  CORRAL_RETURN_IF_ERROR(init());
  auto sk = from_hex(k.secret_hex, crypto_sign_SECRETKEYBYTES, "the secret key");
  if (!sk.is_ok()) return make_error(sk.message());
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size(), sk->data());
  sodium_memzero(sk->data(), sk->size());
  return to_hex(sig, sizeof sig);
}

Expected<bool> verify_hex(const std::string& public_hex, const std::string& message,
                          const std::string& signature_hex) {
  CORRAL_RETURN_IF_ERROR(init());
  auto pk = from_hex(public_hex, crypto_sign_PUBLICKEYBYTES, "the public key");
  if (!pk.is_ok()) return make_error(pk.message());
  auto sig = from_hex(signature_hex, crypto_sign_BYTES, "the signature");
  if (!sig.is_ok()) return make_error(sig.message());
  return crypto_sign_verify_detached(sig->data(),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), pk->data()) == 0;
}

}  // namespace corral
