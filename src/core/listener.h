/*
 * listener: binding the listening sockets named in the configuration, before
 * the workers start.  Each bound socket is non-blocking, has TCP_NODELAY set
 * (accepted sockets inherit it) and logs "listening on ADDR:PORT (name)" so
 * that a caller who asked for port 0 learns the port.
 */
#ifndef PORTCULLIS_LISTENER_H
#define PORTCULLIS_LISTENER_H

#include <stddef.h>

#include "config/config_model.h"

/*
 * Bind and listen on <l>.  An empty host means every address: IPv6 and IPv4
 * on one dual-stack socket, or IPv4 alone where IPv6 is unavailable.  Returns
 * the socket and stores its bound port in *port, or -1 with a reason in <err>.
 */
int listener_bind(const struct config_listener *l, int *port, char *err, size_t errlen);

/*
 * Use <fd>, a listening socket handed over by another process (core/handoff),
 * for <l>: logs its address like listener_bind and stores its port in *port.
 * Returns 0, or -1 with a reason in <err> when it is not listening or its
 * port is not the configured one (the caller then binds anew).
 */
int listener_adopt(const struct config_listener *l, int fd, int *port, char *err, size_t errlen);

#endif
