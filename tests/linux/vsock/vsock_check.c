/* A guest-side check of the vsock back-end (scripts/linux-vsock.sh): connects to the host
 * (CID 2) port 5000, sends a line, and prints what the host answers; then listens on port 52
 * for one host-initiated connection and echoes its line back. Built with gcc -static into
 * the default guest's initramfs. Prints "check vsock: ok" or "check vsock: FAIL ...". */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what) {
  printf("check vsock: FAIL %s: %s\n", what, strerror(errno));
  return 1;
}

static ssize_t read_line(int fd, char *buf, size_t size) {
  size_t n = 0;
  while (n + 1 < size) {
    ssize_t r = read(fd, buf + n, 1);
    if (r <= 0) return r < 0 ? -1 : (ssize_t)n;
    if (buf[n++] == '\n') break;
  }
  buf[n] = 0;
  return (ssize_t)n;
}

int main(void) {
  char buf[128];
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (s < 0) return fail("socket(AF_VSOCK)");
  struct sockaddr_vm host = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = 5000};
  if (connect(s, (struct sockaddr *)&host, sizeof(host)) != 0) return fail("connect 2:5000");
  const char hello[] = "hello from the guest\n";
  if (write(s, hello, sizeof(hello) - 1) != (ssize_t)(sizeof(hello) - 1)) return fail("write");
  if (read_line(s, buf, sizeof(buf)) <= 0) return fail("read the host's answer");
  printf("vsock: host answered: %s", buf);
  close(s);

  int l = socket(AF_VSOCK, SOCK_STREAM, 0);
  struct sockaddr_vm any = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = 52};
  if (l < 0 || bind(l, (struct sockaddr *)&any, sizeof(any)) != 0 || listen(l, 1) != 0) {
    return fail("listen on port 52");
  }
  printf("vsock: listening on port 52\n");
  fflush(stdout);
  int c = accept(l, NULL, NULL);
  if (c < 0) return fail("accept");
  ssize_t n = read_line(c, buf, sizeof(buf));
  if (n <= 0) return fail("read the host client's line");
  if (write(c, buf, (size_t)n) != n) return fail("echo");
  close(c);
  printf("check vsock: ok\n");
  return 0;
}
