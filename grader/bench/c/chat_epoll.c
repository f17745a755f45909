/*
 * chat_epoll.c - the bench's baseline: the course's chat room in C on epoll.
 *
 * Usage: chat_epoll PORT
 *
 * It speaks the chat protocol of 03_poll, 04_epoll and 08_threads (see
 * CONTRACTS.md): a newcomer is told "welcome, you are user N" (N: its
 * descriptor) and the others "user N joined the chat room"; a complete
 * line TEXT from user N goes to every other user as "user N: TEXT"; a user
 * who leaves is announced as "user N disconnected". Like the Python
 * servers it prints every broadcast line on stdout and sends with blocking
 * sockets, so the bench compares the same work done by the same design,
 * written in C: what is left is the cost of the interpreter.
 *
 * Ready line: "started the main epoll loop". Stops on SIGTERM or SIGINT
 * (the default action). Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKLOG 512
#define MAX_EVENTS 1024
#define RECV_SIZE 4096
#define MAX_PENDING (1 << 16) /* a longer unfinished line drops its sender */

struct user {
    int fd;
    int departed;   /* its send or recv failed; removed after the round */
    size_t len;     /* bytes in buf not yet ending in "\n" */
    size_t cap;
    char *buf;
};

static int epfd = -1;
static struct user **by_fd;   /* by_fd[fd]: the user on that descriptor */
static size_t by_fd_size;
static int *order;            /* descriptors in joining order: who hears first */
static size_t users, order_cap;
static int departures;        /* users marked departed this round */

static void die(const char *what)
{
    fprintf(stderr, "chat_epoll: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Make room for `need` items of `item` bytes; new room is zeroed. */
static void *grow(void *array, size_t *cap, size_t need, size_t item)
{
    if (need <= *cap)
        return array;
    size_t bigger = *cap ? *cap : 64;
    while (bigger < need)
        bigger *= 2;
    void *moved = realloc(array, bigger * item);
    if (!moved)
        die("out of memory");
    memset((char *)moved + *cap * item, 0, (bigger - *cap) * item);
    *cap = bigger;
    return moved;
}

/* Send all of data on a blocking socket; 0 on success, -1 if the peer is gone. */
static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void mark_departed(struct user *u)
{
    if (!u->departed) {
        u->departed = 1;
        departures++;
    }
}

/* Print text and send it as a line to every user but skip (-1: nobody). */
static void broadcast(const char *text, size_t len, int skip)
{
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    char *line = malloc(len + 1);
    if (!line)
        die("out of memory");
    memcpy(line, text, len);
    line[len] = '\n';
    for (size_t i = 0; i < users; i++) {
        struct user *u = by_fd[order[i]];
        if (u->fd == skip || u->departed)
            continue;
        if (send_all(u->fd, line, len + 1) < 0)
            mark_departed(u);
    }
    free(line);
}

static void announce(int skip, const char *format, int number)
{
    char text[64];
    int len = snprintf(text, sizeof text, format, number);
    broadcast(text, (size_t)len, skip);
}

static void accept_newcomer(int listener)
{
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return; /* gave up before we accepted, or out of descriptors */
    by_fd = grow(by_fd, &by_fd_size, (size_t)fd + 1, sizeof *by_fd);
    order = grow(order, &order_cap, users + 1, sizeof *order);
    struct user *u = calloc(1, sizeof *u);
    if (!u)
        die("out of memory");
    u->fd = fd;
    by_fd[fd] = u;
    order[users++] = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
    char welcome[64];
    int len = snprintf(welcome, sizeof welcome, "welcome, you are user %d\n", fd);
    if (send_all(fd, welcome, (size_t)len) < 0)
        mark_departed(u);
    announce(fd, "user %d joined the chat room", fd);
}

/* Read what a user sent; broadcast each complete line as "user N: TEXT". */
static void serve(struct user *u)
{
    char chunk[RECV_SIZE];
    ssize_t n = recv(u->fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
        if (n < 0 && errno == EINTR)
            return;
        mark_departed(u); /* 0: end of file; < 0: reset or another error */
        return;
    }
    if (u->len + (size_t)n > MAX_PENDING) {
        mark_departed(u);
        return;
    }
    u->buf = grow(u->buf, &u->cap, u->len + (size_t)n, 1);
    memcpy(u->buf + u->len, chunk, (size_t)n);
    u->len += (size_t)n;

    size_t start = 0;
    char *newline;
    while ((newline = memchr(u->buf + start, '\n', u->len - start)) != NULL) {
        size_t end = (size_t)(newline - u->buf);
        size_t text_len = end - start;
        if (text_len > 0 && u->buf[end - 1] == '\r')
            text_len--; /* telnet ends its lines with "\r\n" */
        char *text = malloc(text_len + 32);
        if (!text)
            die("out of memory");
        int head = snprintf(text, 32, "user %d: ", u->fd);
        memcpy(text + head, u->buf + start, text_len);
        broadcast(text, (size_t)head + text_len, u->fd);
        free(text);
        start = end + 1;
    }
    memmove(u->buf, u->buf + start, u->len - start);
    u->len -= start;
}

/* After a round: close every departed user and tell the others (which can
 * reveal more departed users, so loop until none is left). */
static void remove_departed(void)
{
    while (departures > 0) {
        for (size_t i = 0; i < users; i++) {
            struct user *u = by_fd[order[i]];
            if (!u->departed)
                continue;
            int number = u->fd;
            departures--;
            memmove(order + i, order + i + 1, (users - i - 1) * sizeof *order);
            users--;
            epoll_ctl(epfd, EPOLL_CTL_DEL, number, NULL);
            close(number);
            by_fd[number] = NULL;
            free(u->buf);
            free(u);
            announce(-1, "user %d disconnected", number);
            break; /* the list changed: look again from the start */
        }
    }
}

static int parse_port(int argc, char **argv)
{
    if (argc != 2)
        return -1;
    char *end;
    errno = 0;
    long port = strtol(argv[1], &end, 10);
    if (errno || *argv[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
        return -1;
    return (int)port;
}

int main(int argc, char **argv)
{
    int port = parse_port(argc, argv);
    if (port < 0) {
        fprintf(stderr, "usage: chat_epoll PORT\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0)
        die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0
        || listen(listener, BACKLOG) < 0) {
        fprintf(stderr, "chat_epoll: cannot listen on port %d: %s\n", port, strerror(errno));
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev) < 0)
        die("epoll_ctl");

    printf("started the main epoll loop\n");
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int ready = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                accept_newcomer(listener);
            } else if ((size_t)fd < by_fd_size && by_fd[fd] && !by_fd[fd]->departed) {
                serve(by_fd[fd]);
            }
        }
        remove_departed();
    }
}
