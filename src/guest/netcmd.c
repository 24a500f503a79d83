// SPDX-License-Identifier: MIT
/*
 * disagg-guest's network: NETINFO (eth0's address and the default
 * gateway), NETCHECK (a TCP connection out to the host) and the port-22
 * listener that shows a forwarded ssh port reaching the guest. /init
 * brings eth0 up by DHCP in the background (scripts/build-guest.sh), so
 * NETCHECK retries while there is no address or route yet.
 */
#include "netcmd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define NETCHECK_DEFAULT_MS 10000

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

/* eth0's IPv4 address and prefix length into buf ("-" without one). */
static void eth0_addr(char *buf, size_t len)
{
	_cleanup_(closep) int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	struct in_addr a, m;
	char ip[INET_ADDRSTRLEN];

	snprintf(buf, len, "-");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	if (s < 0 || ioctl(s, SIOCGIFADDR, &ifr) < 0)
		return;
	a = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
	if (ioctl(s, SIOCGIFNETMASK, &ifr) < 0)
		return;
	m = ((struct sockaddr_in *)&ifr.ifr_netmask)->sin_addr;
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	snprintf(buf, len, "%s/%d", ip, __builtin_popcount(m.s_addr));
}

/* The default route's gateway from /proc/net/route ("-" without one). */
static void default_gw(char *buf, size_t len)
{
	FILE *f = fopen("/proc/net/route", "re");
	char line[256], ifn[32];
	unsigned dst, gw;

	snprintf(buf, len, "-");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%31s %x %x", ifn, &dst, &gw) == 3 && dst == 0 && gw != 0) {
			struct in_addr a = { .s_addr = gw };   /* already in network order */

			inet_ntop(AF_INET, &a, buf, (socklen_t)len);
			break;
		}
	fclose(f);
}

static void cmd_netinfo(char **av, int ac)
{
	char addr[64], gw[INET_ADDRSTRLEN];

	(void)av;
	(void)ac;
	eth0_addr(addr, sizeof(addr));
	default_gw(gw, sizeof(gw));
	guest_reply("OK eth0=%s gw=%s", addr, gw);
}

/* One attempt: a connected socket, or -errno. Waits at most ms. */
static int try_connect(const struct sockaddr_in *sin, int ms)
{
	_cleanup_(closep) int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err = 0, r;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		r = poll(&p, 1, ms);
		if (r <= 0)
			return r < 0 ? -errno : -ETIMEDOUT;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
			return err ? -err : -errno;
	}
	r = fd;
	fd = -1;
	return r;
}

static void cmd_netcheck(char **av, int ac)
{
	struct sockaddr_in sin = { .sin_family = AF_INET }, me;
	socklen_t mlen = sizeof(me);
	uint64_t port, ms = NETCHECK_DEFAULT_MS, t0 = guest_now_ns();
	char src[INET_ADDRSTRLEN] = "-", msg[128];
	int fd = -ENETUNREACH;

	if ((ac != 3 && ac != 4) || inet_pton(AF_INET, av[1], &sin.sin_addr) != 1 ||
	    guest_parse_u64(av[2], 1, 65535, &port) < 0 ||
	    (ac == 4 && guest_parse_u64(av[3], 1, 600000, &ms) < 0)) {
		guest_reply("ERR usage: NETCHECK IPV4 PORT [MS]");
		return;
	}
	sin.sin_port = htons((uint16_t)port);
	/* The network may still be coming up: no route, no address, nobody answering yet. */
	while (guest_ms_since(t0) < ms) {
		fd = try_connect(&sin, (int)(ms - guest_ms_since(t0)));
		if (fd >= 0)
			break;
		usleep(100000);
	}
	if (fd < 0) {
		guest_reply("ERR connect %s:%llu: %s", av[1], (unsigned long long)port, strerror(-fd));
		return;
	}
	if (getsockname(fd, (struct sockaddr *)&me, &mlen) == 0)
		inet_ntop(AF_INET, &me.sin_addr, src, sizeof(src));
	snprintf(msg, sizeof(msg), "disagg-guest netcheck from %s\n", src);
	if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg)) {
		guest_reply("ERR write to %s:%llu: %s", av[1], (unsigned long long)port, strerror(errno));
		close(fd);
		return;
	}
	close(fd);
	guest_reply("OK connected=%s:%llu src=%s ms=%llu", av[1], (unsigned long long)port, src,
		    guest_ms_since(t0));
}

static void *listener_main(void *arg)
{
	int ls = (int)(intptr_t)arg;
	static const char banner[] = NET_BANNER "\r\n";

	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0) {
			usleep(100000);
			continue;
		}
		(void)!write(c, banner, sizeof(banner) - 1);
		shutdown(c, SHUT_WR);
		close(c);
	}
	return NULL;
}

int net_listener_start(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(22) };
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, r;
	pthread_attr_t attr;
	pthread_t t;

	if (ls < 0)
		return -errno;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(ls, 8) < 0) {
		r = -errno;
		close(ls);
		return r;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&t, &attr, listener_main, (void *)(intptr_t)ls);
	pthread_attr_destroy(&attr);
	if (r < 0)
		close(ls);
	return r;
}

const struct guest_cmd net_cmds[] = {
	{ "NETINFO", cmd_netinfo },
	{ "NETCHECK", cmd_netcheck },
	{ NULL, NULL },
};
