#ifndef CTRUST_H
#define CTRUST_H

#include <stddef.h>
#include <stdint.h>

/* Plugin trust (docs/security.md, "Plugin trust"): the verified copy of a plugin and its checks, with OpenSSL's
 * libcrypto. Every function that can fail writes one human-readable reason into `reason` (NUL-terminated). */

/* Copies everything `fd` holds (from offset 0, until end of file) into a new memfd, then seals it
 * (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL): from then on nobody, this process included, can
 * change its bytes. Returns the memfd (close-on-exec) or -1. */
int mcpt_sealed_copy(int fd, char *reason, size_t reason_len);

/* 1 when `fd` is a memfd carrying all four seals above, else 0. */
int mcpt_is_sealed(int fd);

/* Maps the whole of `fd` read-only. An empty file maps to a non-NULL dummy with *len = 0. Returns 0 or -1. */
int mcpt_map(int fd, const uint8_t **data, size_t *len, char *reason, size_t reason_len);
void mcpt_unmap(const uint8_t *data, size_t len);

/* SHA-256 of `len` bytes into out[32]. Returns 0 or -1. */
int mcpt_sha256(const uint8_t *data, size_t len, uint8_t out[32], char *reason, size_t reason_len);

/* A trusted public key. */
typedef struct mcpt_key mcpt_key;

/* Reads a PEM public key (SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----") from `path`; it must be Ed25519.
 * fingerprint[32] receives the SHA-256 of the key's DER SubjectPublicKeyInfo encoding (what
 * `openssl pkey -pubin -in KEY.pem -outform DER | openssl dgst -sha256` prints). NULL on failure. */
mcpt_key *mcpt_key_load(const char *path, uint8_t fingerprint[32], char *reason, size_t reason_len);
void mcpt_key_free(mcpt_key *key);

/* Verifies a raw 64-byte Ed25519 signature (what `openssl pkeyutl -sign -rawin` writes) of `data`.
 * Returns 1 valid, 0 not valid, -1 error (reason set). */
int mcpt_verify(const mcpt_key *key, const uint8_t *data, size_t len, const uint8_t *sig, size_t sig_len, char *reason,
                size_t reason_len);

/* requestState sealing (docs/protocol.md, "Input requests"): ChaCha20-Poly1305 with a 32-byte key, a random
 * 12-byte nonce and `aad` bound in. The sealed form is nonce || ciphertext || 16-byte tag, so `out` needs
 * len + 28 bytes. Returns the bytes written, or -1. */
#define MCPT_SEAL_OVERHEAD 28
long mcpt_seal(const uint8_t key[32], const uint8_t *aad, size_t aad_len, const uint8_t *data, size_t len,
               uint8_t *out);
/* Opens what mcpt_seal made with the same key and aad; `out` needs len - 28 bytes. Returns the bytes
 * written, or -1 when the sealed bytes are too short, were changed, or were sealed with another key or aad. */
long mcpt_open(const uint8_t key[32], const uint8_t *aad, size_t aad_len, const uint8_t *sealed, size_t len,
               uint8_t *out);

#endif
