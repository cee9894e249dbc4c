// uds_exchange SOCKET HEX [N]: connects to a Unix stream socket, sends the bytes HEX spells,
// reads up to N bytes (default 64, 5 s at most) and prints them as hex. The AppArmor and SELinux
// guest tests (tests/mac/apparmor-guest.sh, tests/selinux/selinux-guest.sh) speak to the
// back-ends with it: busybox has no Unix socket client.
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: uds_exchange SOCKET HEX [N]\n");
    return 2;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(argv[1]) >= sizeof(addr.sun_path)) return 2;
  strcpy(addr.sun_path, argv[1]);
  unsigned char out[512], in[512];
  size_t n = strlen(argv[2]) / 2, want = argc > 3 ? (size_t)atoi(argv[3]) : 64;
  if (strlen(argv[2]) % 2 != 0 || n > sizeof(out) || want > sizeof(in)) return 2;
  for (size_t i = 0; i < n; ++i) {
    if (sscanf(argv[2] + 2 * i, "%2hhx", &out[i]) != 1) return 2;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr*)&addr, sizeof(addr)) != 0) {
    perror("connect");
    return 1;
  }
  if (write(fd, out, n) != (ssize_t)n) {
    perror("write");
    return 1;
  }
  size_t got = 0;
  while (got < want) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) break;
    ssize_t r = read(fd, in + got, want - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  for (size_t i = 0; i < got; ++i) printf("%02x", in[i]);
  printf("\n");
  return got > 0 ? 0 : 1;
}
