/* Test helper for selinux-guest-inside.sh (busybox has no Unix-socket client): connects to
 * a Unix stream socket, sends the bytes given in hex, reads N bytes back and prints them in
 * hex. Usage: uds_roundtrip PATH HEX N. Exit 0 on success, 1 on any error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    fprintf(stderr, "usage: uds_roundtrip PATH HEX N\n");
    return 1;
  }
  size_t hex_len = strlen(argv[2]);
  long want = strtol(argv[3], NULL, 10);
  unsigned char out[512], in[512];
  if (hex_len % 2 != 0 || hex_len / 2 > sizeof(out) || want < 0 || want > (long)sizeof(in)) {
    fprintf(stderr, "uds_roundtrip: bad HEX or N\n");
    return 1;
  }
  for (size_t i = 0; i < hex_len / 2; i++) {
    unsigned int byte;
    if (sscanf(argv[2] + 2 * i, "%2x", &byte) != 1) return 1;
    out[i] = (unsigned char)byte;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strcpy(addr.sun_path, argv[1]);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    perror("uds_roundtrip: connect");
    return 1;
  }
  if (write(fd, out, hex_len / 2) != (ssize_t)(hex_len / 2)) {
    perror("uds_roundtrip: write");
    return 1;
  }
  long got = 0;
  while (got < want) {
    ssize_t n = read(fd, in + got, (size_t)(want - got));
    if (n <= 0) {
      fprintf(stderr, "uds_roundtrip: read: short reply (%ld of %ld bytes)\n", got, want);
      return 1;
    }
    got += n;
  }
  for (long i = 0; i < got; i++) printf("%02x", in[i]);
  printf("\n");
  close(fd);
  return 0;
}
