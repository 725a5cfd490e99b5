/*
 * msb-tree: a canonical listing of a directory tree, one line per entry, sorted by path bytes.
 * Built static (gcc -static) so the same program runs in the guest (busybox has no getfattr and no
 * way to print xattrs) and on the host against `umoci unpack`'s rootfs: both sides of the guest
 * test's comparison are produced by this one program.
 *
 *   <path> <type> mode=<4 octal digits> uid=<n> gid=<n> nlink=<n> [size=<n> sha256=<hex>]
 *       [link=<smallest path of the hardlink group>] [target=<symlink target>] [rdev=<maj>,<min>]
 *       mtime=<sec>.<9 digits> [xattr.<name>=<hex value>]...
 *
 * <type> is dir|file|symlink|chr|blk|fifo|sock|unknown. Paths, targets and xattr names are ASCII
 * without spaces: every byte outside 0x21..0x7e, and the backslash, is written as \xHH, so a line
 * splits on spaces and survives any console.
 * link= appears on every regular file with nlink > 1 (a group is keyed by st_dev and st_ino).
 * Xattrs are sorted by name. Usage: msb-tree ROOT. Exit 1 on any error, with a message on stderr.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---------- SHA-256 (FIPS 180-4) ---------- */
typedef struct { uint32_t h[8]; uint64_t len; unsigned char buf[64]; size_t n; } sha256_ctx;

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const unsigned char *p) {
  uint32_t w[64], a, b, d, e, f, g, h, cc;
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3]; e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
    h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
  }
  c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, iv, sizeof iv);
  c->len = 0;
  c->n = 0;
}

static void sha256_update(sha256_ctx *c, const unsigned char *p, size_t n) {
  c->len += n;
  while (n > 0) {
    size_t k = 64 - c->n < n ? 64 - c->n : n;
    memcpy(c->buf + c->n, p, k);
    c->n += k; p += k; n -= k;
    if (c->n == 64) { sha256_block(c, c->buf); c->n = 0; }
  }
}

static void sha256_hex(sha256_ctx *c, char out[65]) {
  uint64_t bits = c->len * 8;
  unsigned char pad = 0x80, zero = 0, lenb[8];
  sha256_update(c, &pad, 1);
  while (c->n != 56) sha256_update(c, &zero, 1);
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_update(c, lenb, 8);
  for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", c->h[i]);
}

/* ---------- growable strings ---------- */
typedef struct { char *p; size_t n, cap; } str;

static void die(const char *what, const char *path) {
  fprintf(stderr, "msb-tree: %s: %s: %s\n", what, path, strerror(errno));
  exit(1);
}

static void put(str *s, const char *p, size_t n) {
  if (s->n + n + 1 > s->cap) {
    s->cap = (s->n + n + 1) * 2;
    s->p = realloc(s->p, s->cap);
    if (!s->p) { fputs("msb-tree: out of memory\n", stderr); exit(1); }
  }
  memcpy(s->p + s->n, p, n);
  s->n += n;
  s->p[s->n] = 0;
}

static void puts_(str *s, const char *p) { put(s, p, strlen(p)); }

static void putf(str *s, const char *fmt, unsigned long long a, unsigned long long b) {
  char tmp[96];
  int n = snprintf(tmp, sizeof tmp, fmt, a, b);
  put(s, tmp, (size_t)n);
}

/* Spaces, bytes outside printable ASCII, and the backslash, as \xHH. */
static void put_escaped(str *s, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch <= 0x20 || ch > 0x7e || ch == '\\') {
      char e[5];
      snprintf(e, sizeof e, "\\x%02x", ch);
      put(s, e, 4);
    } else {
      put(s, (const char *)&ch, 1);
    }
  }
}

/* ---------- entries ---------- */
typedef struct entry { char *path; char *line; dev_t dev; ino_t ino; int multi; struct entry *first; } entry;
static entry *ents;
static size_t nents, capents;

static void hash_file(const char *full, char hex[65]) {
  static unsigned char buf[1 << 16];
  int fd = open(full, O_RDONLY | O_NOFOLLOW);
  if (fd < 0) die("open", full);
  sha256_ctx c;
  sha256_init(&c);
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) { if (errno == EINTR) continue; die("read", full); }
    if (r == 0) break;
    sha256_update(&c, buf, (size_t)r);
  }
  close(fd);
  sha256_hex(&c, hex);
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void put_xattrs(str *s, const char *full) {
  ssize_t n = llistxattr(full, NULL, 0);
  if (n < 0) { if (errno == ENOTSUP) return; die("llistxattr", full); }
  if (n == 0) return;
  char *names = malloc((size_t)n);
  n = llistxattr(full, names, (size_t)n);
  if (n < 0) die("llistxattr", full);
  size_t count = 0;
  for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) count++;
  char **v = malloc(count * sizeof *v);
  count = 0;
  for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) v[count++] = names + i;
  qsort(v, count, sizeof *v, cmp_cstr);
  for (size_t i = 0; i < count; i++) {
    ssize_t vn = lgetxattr(full, v[i], NULL, 0);
    if (vn < 0) die("lgetxattr", full);
    unsigned char *val = malloc((size_t)vn + 1);
    vn = lgetxattr(full, v[i], val, (size_t)vn);
    if (vn < 0) die("lgetxattr", full);
    puts_(s, " xattr.");
    put_escaped(s, v[i], strlen(v[i]));
    puts_(s, "=");
    for (ssize_t j = 0; j < vn; j++) putf(s, "%02llx", val[j], 0);
    free(val);
  }
  free(v);
  free(names);
}

static const char *type_of(mode_t m) {
  if (S_ISDIR(m)) return "dir";
  if (S_ISREG(m)) return "file";
  if (S_ISLNK(m)) return "symlink";
  if (S_ISCHR(m)) return "chr";
  if (S_ISBLK(m)) return "blk";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "sock";
  return "unknown";
}

/* One entry's line without link= (added after sorting, once every group member is known). Returns st_mode. */
static mode_t describe(const char *full, const char *rel) {
  struct stat st;
  if (lstat(full, &st) != 0) die("lstat", full);
  str head = {0}, tail = {0};
  put_escaped(&head, rel, strlen(rel));
  puts_(&head, " ");
  puts_(&head, type_of(st.st_mode));
  putf(&head, " mode=%04llo uid=%llu", st.st_mode & 07777, st.st_uid);
  putf(&head, " gid=%llu nlink=%llu", st.st_gid, st.st_nlink);
  if (S_ISREG(st.st_mode)) {
    char hex[65];
    hash_file(full, hex);
    putf(&head, " size=%llu", (unsigned long long)st.st_size, 0);
    puts_(&head, " sha256=");
    puts_(&head, hex);
  } else if (S_ISLNK(st.st_mode)) {
    char *t = malloc((size_t)st.st_size + 1);
    ssize_t n = readlink(full, t, (size_t)st.st_size + 1);
    if (n < 0 || n > st.st_size) die("readlink", full);
    puts_(&tail, " target=");
    put_escaped(&tail, t, (size_t)n);
    free(t);
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    putf(&tail, " rdev=%llu,%llu", major(st.st_rdev), minor(st.st_rdev));
  }
  putf(&tail, " mtime=%llu.%09llu", (unsigned long long)st.st_mtim.tv_sec, (unsigned long long)st.st_mtim.tv_nsec);
  put_xattrs(&tail, full);
  if (nents == capents) {
    capents = capents ? capents * 2 : 1024;
    ents = realloc(ents, capents * sizeof *ents);
    if (!ents) { fputs("msb-tree: out of memory\n", stderr); exit(1); }
  }
  /* line = head "\0" tail: link= goes between them. */
  put(&head, "", 1);
  put(&head, tail.p ? tail.p : "", tail.n);
  ents[nents++] = (entry){strdup(rel), head.p, st.st_dev, st.st_ino, S_ISREG(st.st_mode) && st.st_nlink > 1, NULL};
  free(tail.p);
  return st.st_mode;
}

static void walk(const char *full, const char *rel) {
  DIR *d = opendir(full);
  if (!d) die("opendir", full);
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    size_t fl = strlen(full), rl = strlen(rel), nl = strlen(de->d_name);
    char *cf = malloc(fl + nl + 2), *cr = malloc(rl + nl + 2);
    sprintf(cf, "%s/%s", full, de->d_name);
    sprintf(cr, "%s/%s", strcmp(rel, "/") ? rel : "", de->d_name);
    if (S_ISDIR(describe(cf, cr))) walk(cf, cr);
    free(cf);
    free(cr);
    errno = 0;
  }
  if (errno) die("readdir", full);
  closedir(d);
}

static int cmp_path(const void *a, const void *b) { return strcmp(((const entry *)a)->path, ((const entry *)b)->path); }

/* Hardlink groups: by (dev, ino), then path, so each group's first member has its smallest path. */
static int cmp_inode(const void *a, const void *b) {
  const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
  if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
  if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
  return strcmp(x->path, y->path);
}

static void link_groups(void) {
  size_t n = 0;
  entry **v = malloc((nents + 1) * sizeof *v);
  for (size_t i = 0; i < nents; i++) if (ents[i].multi) v[n++] = &ents[i];
  qsort(v, n, sizeof *v, cmp_inode);
  for (size_t i = 0; i < n; i++) v[i]->first = (i > 0 && v[i - 1]->dev == v[i]->dev && v[i - 1]->ino == v[i]->ino) ? v[i - 1]->first : v[i];
  free(v);
}

int main(int argc, char **argv) {
  if (argc != 2) { fputs("usage: msb-tree ROOT\n", stderr); return 2; }
  describe(argv[1], "/");
  walk(argv[1], "/");
  qsort(ents, nents, sizeof *ents, cmp_path);
  link_groups();
  for (size_t i = 0; i < nents; i++) {
    entry *e = &ents[i];
    fputs(e->line, stdout);
    if (e->multi) {
      str l = {0};
      puts_(&l, " link=");
      put_escaped(&l, e->first->path, strlen(e->first->path));
      fputs(l.p, stdout);
      free(l.p);
    }
    fputs(e->line + strlen(e->line) + 1, stdout);
    fputc('\n', stdout);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) { perror("msb-tree: stdout"); return 1; }
  return 0;
}
