/* headscan: request-head line endings; see headscan.h. */
#include "http/headscan.h"

#include <string.h>

enum {
	H_START,      /* before the request line: empty lines are skipped */
	H_LINE,
	H_CR,
	H_LINE_START,
	H_END_CR,
	H_DONE,
};

void
headscan_init(struct headscan *h)
{
	h->state = H_START;
}

enum headscan_result
headscan_feed(struct headscan *h, const char *in, size_t len, size_t *used)
{
	size_t i;

	for (i = 0; i < len && h->state != H_DONE; i++) {
		char c = in[i];

		switch (h->state) {
		case H_START:
			if (c != '\r' && c != '\n')
				h->state = H_LINE;
			break;
		case H_LINE: {
			/* Jump to the line's end: the next LF, or a CR before it
			 * (memchr is vectorised; header lines are most of a head). */
			const char *lf = memchr(in + i, '\n', len - i);
			size_t end = lf != NULL ? (size_t)(lf - in) : len;
			const char *cr = memchr(in + i, '\r', end - i);

			if (cr != NULL) {
				i = (size_t)(cr - in);
				h->state = H_CR;
			} else if (lf != NULL) {
				i = end;
				h->state = H_LINE_START;
			} else {
				i = len - 1; /* all of it is inside the line */
			}
			break;
		}
		case H_CR:
			if (c != '\n') {
				*used = i;
				return HEADSCAN_BARE_CR;
			}
			h->state = H_LINE_START;
			break;
		case H_LINE_START:
			if (c == ' ' || c == '\t') {
				*used = i;
				return HEADSCAN_FOLD;
			}
			if (c == '\r')
				h->state = H_END_CR;
			else if (c == '\n')
				h->state = H_DONE;
			else
				h->state = H_LINE;
			break;
		case H_END_CR:
			if (c != '\n') {
				*used = i;
				return HEADSCAN_BARE_CR;
			}
			h->state = H_DONE;
			break;
		default:
			break;
		}
	}
	*used = i;
	return h->state == H_DONE ? HEADSCAN_DONE : HEADSCAN_MORE;
}
