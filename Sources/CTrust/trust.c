#define _GNU_SOURCE
#include "CTrust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

struct mcpt_key {
    EVP_PKEY *pkey;
};

static void say(char *reason, size_t len, const char *fmt, ...) {
    if (!reason || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, len, fmt, ap);
    va_end(ap);
}

/* The last OpenSSL error as text, or `fallback`; the error queue is cleared. */
static void say_openssl(char *reason, size_t len, const char *what) {
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    say(reason, len, "%s%s%s", what, e ? ": " : "", buf);
}

int mcpt_sealed_copy(int fd, char *reason, size_t reason_len) {
    /* MFD_EXEC: the loader maps the copy executable (kernels with vm.memfd_noexec would refuse otherwise);
     * kernels before 6.3 do not know the flag and say EINVAL, then it is not needed. */
    int m = memfd_create("mcp-plugin", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (m < 0 && errno == EINVAL) m = memfd_create("mcp-plugin", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (m < 0) {
        say(reason, reason_len, "cannot create the verified copy (memfd_create): %s", strerror(errno));
        return -1;
    }
    off_t offset = 0;
    int use_sendfile = 1;
    char buf[64 * 1024];
    for (;;) {
        ssize_t n;
        if (use_sendfile) {
            n = sendfile(m, fd, &offset, 1 << 30);
            if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
                use_sendfile = 0;
                continue;
            }
        } else {
            n = pread(fd, buf, sizeof buf, offset);
            if (n > 0) {
                ssize_t done = 0;
                while (done < n) {
                    ssize_t w = write(m, buf + done, (size_t)(n - done));
                    if (w < 0 && errno == EINTR) continue;
                    if (w < 0) {
                        say(reason, reason_len, "cannot write the verified copy: %s", strerror(errno));
                        close(m);
                        return -1;
                    }
                    done += w;
                }
                offset += n;
            }
        }
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            say(reason, reason_len, "cannot read the plugin file: %s", strerror(errno));
            close(m);
            return -1;
        }
    }
    if (fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
        say(reason, reason_len, "cannot seal the verified copy: %s", strerror(errno));
        close(m);
        return -1;
    }
    return m;
}

int mcpt_is_sealed(int fd) {
    int want = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & want) == want;
}

int mcpt_map(int fd, const uint8_t **data, size_t *len, char *reason, size_t reason_len) {
    static const uint8_t empty[1];
    struct stat st;
    if (fstat(fd, &st) != 0) {
        say(reason, reason_len, "cannot stat the verified copy: %s", strerror(errno));
        return -1;
    }
    if (st.st_size == 0) {
        *data = empty;
        *len = 0;
        return 0;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        say(reason, reason_len, "cannot map the verified copy: %s", strerror(errno));
        return -1;
    }
    *data = p;
    *len = (size_t)st.st_size;
    return 0;
}

void mcpt_unmap(const uint8_t *data, size_t len) {
    if (len > 0) munmap((void *)data, len);
}

int mcpt_sha256(const uint8_t *data, size_t len, uint8_t out[32], char *reason, size_t reason_len) {
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        say_openssl(reason, reason_len, "SHA-256 failed");
        return -1;
    }
    return 0;
}

mcpt_key *mcpt_key_load(const char *path, uint8_t fingerprint[32], char *reason, size_t reason_len) {
    FILE *f = fopen(path, "re");
    if (!f) {
        say(reason, reason_len, "cannot read: %s", strerror(errno));
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey) {
        say_openssl(reason, reason_len, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
        return NULL;
    }
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        say(reason, reason_len, "not an Ed25519 key (it is %s)", OBJ_nid2sn(EVP_PKEY_get_id(pkey)));
        EVP_PKEY_free(pkey);
        return NULL;
    }
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0 || mcpt_sha256(der, (size_t)n, fingerprint, reason, reason_len) != 0) {
        if (n <= 0) say_openssl(reason, reason_len, "cannot encode the key");
        OPENSSL_free(der);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    OPENSSL_free(der);
    mcpt_key *key = OPENSSL_zalloc(sizeof *key);
    if (!key) {
        EVP_PKEY_free(pkey);
        say(reason, reason_len, "out of memory");
        return NULL;
    }
    key->pkey = pkey;
    return key;
}

void mcpt_key_free(mcpt_key *key) {
    if (!key) return;
    EVP_PKEY_free(key->pkey);
    OPENSSL_free(key);
}

int mcpt_verify(const mcpt_key *key, const uint8_t *data, size_t len, const uint8_t *sig, size_t sig_len, char *reason,
                size_t reason_len) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        say(reason, reason_len, "out of memory");
        return -1;
    }
    /* Ed25519 is one-shot (PureEdDSA): no digest is named, the whole message goes in at once. */
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) != 1) {
        say_openssl(reason, reason_len, "cannot start the Ed25519 verification");
        EVP_MD_CTX_free(ctx);
        return -1;
    }
    int rc = EVP_DigestVerify(ctx, sig, sig_len, data, len);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc == 1 ? 1 : 0;
}

/* --- requestState sealing ------------------------------------------------------------------------------ */

#include <openssl/rand.h>

long mcpt_seal(const uint8_t key[32], const uint8_t *aad, size_t aad_len, const uint8_t *data, size_t len,
               uint8_t *out) {
    if (len > (size_t)INT32_MAX || aad_len > (size_t)INT32_MAX) return -1;
    uint8_t *nonce = out;
    if (RAND_bytes(nonce, 12) != 1) return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return -1;
    long written = -1;
    int n = 0, fin = 0;
    if (EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce) == 1 &&
        (aad_len == 0 || EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1) &&
        EVP_EncryptUpdate(ctx, out + 12, &n, data, (int)len) == 1 &&
        EVP_EncryptFinal_ex(ctx, out + 12 + n, &fin) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + 12 + n + fin) == 1)
        written = 12 + n + fin + 16;
    EVP_CIPHER_CTX_free(ctx);
    return written;
}

long mcpt_open(const uint8_t key[32], const uint8_t *aad, size_t aad_len, const uint8_t *sealed, size_t len,
               uint8_t *out) {
    if (len < MCPT_SEAL_OVERHEAD || len > (size_t)INT32_MAX || aad_len > (size_t)INT32_MAX) return -1;
    size_t body = len - MCPT_SEAL_OVERHEAD;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return -1;
    long written = -1;
    int n = 0, fin = 0;
    uint8_t tag[16];
    memcpy(tag, sealed + 12 + body, 16);
    if (EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, sealed) == 1 &&
        (aad_len == 0 || EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1) &&
        EVP_DecryptUpdate(ctx, out, &n, sealed + 12, (int)body) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1 &&
        EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1)
        written = n + fin;
    EVP_CIPHER_CTX_free(ctx);
    return written;
}
