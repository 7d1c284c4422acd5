/* Diagnostics on stderr, one line each: "certctl-NAME: message". */
#ifndef CERTCTL_LOG_H
#define CERTCTL_LOG_H

enum log_level { LOG_QUIET = 0, LOG_NORMAL = 1, LOG_VERBOSE = 2, LOG_DEBUG = 3 };

void log_init(const char *program_name);
const char *log_program_name(void);
void log_set_level(int level);
int log_get_level(void);

/* Errors always print; warnings unless -q; info with -v. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
