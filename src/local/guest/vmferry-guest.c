/*
 * vmferry-guest: the workload of the test/demo Linux guest (runs as a child of /init).
 *
 * Three jobs, each observable from outside the guest:
 *  - counter: TCP on --port; every client gets "<seq> <guest-monotonic-ms>\n" each --interval-ms.
 *    seq is one counter for the guest's life; a client thread sends every seq from the one after
 *    its first, so within one connection a missing seq means data was lost, and a long gap in
 *    arrival times means the guest (or the network) stood still.
 *  - dirtier: writes one word into each 4 KiB page of --dirty-mib MiB at --dirty-rate MiB/s
 *    (either 0: off), and reports its pass count on the console.
 *  - disk writer: appends 512-byte records (seq, time, boot id, checksum) to --disk with O_DIRECT
 *    and fdatasync, and prints "VMFERRY-DISK-ACK <seq>" once a record is durable, so a host can
 *    check that every acknowledged record is on the disk afterwards.
 * The console is stdout (init points it at /dev/console). Built with gcc -static -O2 -pthread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define RING 4096 /* ticks a slow client may fall behind before it is dropped */
#define RECORD 512
#define DISK_MAGIC "VMFGDISK"

static struct {
  int port;
  int interval_ms;
  long dirty_mib;
  long dirty_rate;
  const char *disk;
  int disk_interval_ms;
  int report_s;
} opt = {5555, 10, 0, 0, NULL, 100, 5};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ticked = PTHREAD_COND_INITIALIZER;
static uint64_t seq;          /* last tick published; guarded by lock */
static uint64_t tick_ms[RING]; /* guest time of each recent tick, by seq % RING */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) {
  /* One write per line so lines from different threads never interleave on the console. */
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  ssize_t w = write(1, line, (size_t)n);
  (void)w;
}

static int64_t ns_of(const struct timespec *t) { return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec; }

static void sleep_until(struct timespec *next, long step_ns) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t due = ns_of(next) + step_ns;
  /* Late by more than a step (migration downtime, a stopped VM, a busy host): go on from now
     instead of bursting the missed steps, so a pause shows as one in the arrival times. */
  if (ns_of(&now) > due) due = ns_of(&now);
  next->tv_sec = due / 1000000000LL;
  next->tv_nsec = due % 1000000000LL;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) == EINTR) {
  }
}

static void *ticker(void *arg) {
  (void)arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (;;) {
    sleep_until(&next, (long)opt.interval_ms * 1000000L);
    pthread_mutex_lock(&lock);
    seq++;
    tick_ms[seq % RING] = now_ms();
    pthread_cond_broadcast(&ticked);
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

static int send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

static void *client(void *arg) {
  int fd = (int)(intptr_t)arg;
  pthread_mutex_lock(&lock);
  uint64_t sent = seq;
  pthread_mutex_unlock(&lock);
  char buf[RING * 8];
  for (;;) {
    size_t len = 0;
    pthread_mutex_lock(&lock);
    while (seq == sent) pthread_cond_wait(&ticked, &lock);
    if (seq - sent >= RING) {
      pthread_mutex_unlock(&lock);
      break; /* the ring no longer holds what this client missed: drop it rather than skip */
    }
    while (sent < seq && len + 48 < sizeof buf) {
      sent++;
      len += (size_t)snprintf(buf + len, sizeof buf - len, "%llu %llu\n", (unsigned long long)sent, (unsigned long long)tick_ms[sent % RING]);
    }
    pthread_mutex_unlock(&lock);
    if (send_all(fd, buf, len) < 0) break;
  }
  close(fd);
  return NULL;
}

static int serve(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return -1;
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) return -1;
  return s;
}

static void *acceptor(void *arg) {
  int s = (int)(intptr_t)arg;
  for (;;) {
    int fd = accept(s, NULL, NULL);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t t;
    if (pthread_create(&t, NULL, client, (void *)(intptr_t)fd) != 0) {
      close(fd);
      continue;
    }
    pthread_detach(t);
  }
  return NULL;
}

static void *dirtier(void *arg) {
  (void)arg;
  size_t pages = (size_t)opt.dirty_mib * 256;
  volatile uint64_t *mem = malloc(pages * 4096);
  if (!mem) {
    say("VMFERRY-DIRTY cannot allocate %ld MiB", opt.dirty_mib);
    return NULL;
  }
  /* Every 10 ms catch up with the pages due at the rate so far; a pause is not made up for
     beyond 100 ms worth, so the rate stays what was asked after the guest stood still. */
  uint64_t per_s = (uint64_t)opt.dirty_rate * 256, cap = per_s / 10 + 1;
  uint64_t passes = 0, value = 0, done = 0, start = now_ms();
  size_t page = 0;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  uint64_t reported = start;
  for (;;) {
    uint64_t due = per_s * (now_ms() - start) / 1000;
    if (due > done + cap) done = due - cap;
    for (; done < due; done++) {
      mem[page * 512] = ++value;
      if (++page == pages) {
        page = 0;
        passes++;
      }
    }
    if (now_ms() - reported >= (uint64_t)opt.report_s * 1000) {
      reported = now_ms();
      say("VMFERRY-DIRTY passes=%llu", (unsigned long long)passes);
    }
    sleep_until(&next, 10000000L);
  }
  return NULL;
}

static uint32_t fnv1a(const unsigned char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int disk_fd = -1;
static uint64_t disk_slots;

static int open_disk(void) {
  disk_fd = open(opt.disk, O_RDWR | O_DIRECT | O_DSYNC);
  if (disk_fd < 0) return -1;
  uint64_t bytes = 0;
  if (ioctl(disk_fd, BLKGETSIZE64, &bytes) < 0) bytes = (uint64_t)lseek(disk_fd, 0, SEEK_END);
  disk_slots = bytes / RECORD;
  return disk_slots ? 0 : -1;
}

/* Record for seq N lives at slot (N-1) % slots: a host reads back the last acknowledged seqs. */
static void *disk_writer(void *arg) {
  (void)arg;
  unsigned char *rec;
  if (posix_memalign((void **)&rec, 4096, RECORD) != 0) return NULL;
  uint64_t boot_id = 0;
  if (getrandom(&boot_id, sizeof boot_id, 0) != sizeof boot_id) boot_id = now_ms();
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (uint64_t n = 1;; n++) {
    memset(rec, 0, RECORD);
    memcpy(rec, DISK_MAGIC, 8);
    put64(rec + 8, n);
    put64(rec + 16, now_ms());
    put64(rec + 24, boot_id);
    uint32_t sum = fnv1a(rec, 32);
    for (int i = 0; i < 4; i++) rec[32 + i] = (unsigned char)(sum >> (8 * i));
    off_t at = (off_t)(((n - 1) % disk_slots) * RECORD);
    if (pwrite(disk_fd, rec, RECORD, at) != RECORD || fdatasync(disk_fd) != 0) {
      say("VMFERRY-DISK-ERROR seq=%llu errno=%d", (unsigned long long)n, errno);
      return NULL;
    }
    say("VMFERRY-DISK-ACK %llu", (unsigned long long)n);
    sleep_until(&next, (long)opt.disk_interval_ms * 1000000L);
  }
  return NULL;
}

static long num(const char *name, const char *v, long lo, long hi) {
  char *end;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || n < lo || n > hi) {
    fprintf(stderr, "vmferry-guest: bad %s '%s' (want %ld..%ld)\n", name, v, lo, hi);
    exit(2);
  }
  return n;
}

static void start(void *(*fn)(void *), void *arg) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, arg) != 0) {
    say("VMFERRY-GUEST-FAILED cannot start a thread");
    exit(1);
  }
  pthread_detach(t);
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--port")) opt.port = (int)num(k, v, 1, 65535);
    else if (!strcmp(k, "--interval-ms")) opt.interval_ms = (int)num(k, v, 1, 60000);
    else if (!strcmp(k, "--dirty-mib")) opt.dirty_mib = num(k, v, 0, 1 << 20);
    else if (!strcmp(k, "--dirty-rate")) opt.dirty_rate = num(k, v, 0, 1 << 20);
    else if (!strcmp(k, "--disk")) opt.disk = *v ? v : NULL;
    else if (!strcmp(k, "--disk-interval-ms")) opt.disk_interval_ms = (int)num(k, v, 1, 60000);
    else if (!strcmp(k, "--report-s")) opt.report_s = (int)num(k, v, 1, 3600);
    else {
      fprintf(stderr, "vmferry-guest: unknown option %s\n", k);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  int s = serve();
  if (s < 0) {
    say("VMFERRY-GUEST-FAILED listen on port %d: errno %d", opt.port, errno);
    return 1;
  }
  if (opt.disk && open_disk() < 0) {
    say("VMFERRY-GUEST-FAILED disk %s: errno %d", opt.disk, errno);
    return 1;
  }
  start(ticker, NULL);
  start(acceptor, (void *)(intptr_t)s);
  if (opt.dirty_mib > 0 && opt.dirty_rate > 0) start(dirtier, NULL);
  if (opt.disk) start(disk_writer, NULL);
  say("VMFERRY-GUEST-READY port=%d interval_ms=%d dirty_mib=%ld dirty_rate=%ld disk=%s slots=%llu", opt.port, opt.interval_ms, opt.dirty_mib,
      opt.dirty_rate, opt.disk ? opt.disk : "none", (unsigned long long)disk_slots);
  for (;;) pause();
}
