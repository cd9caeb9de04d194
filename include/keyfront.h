/*
 * keyfront.h - vendor-defined PKCS#11 constants of keyfront.
 *
 * keyfront defines no vendor mechanisms, attributes or return values yet;
 * when it does, they will be declared here, for use together with the
 * standard PKCS#11 3.0 header.  Until then a consumer needs only the
 * standard header.
 *
 * The module is configured through the environment of the process that
 * loads it (see docs/configuration.md):
 *
 *   KEYFRONT_CONFIG    path of a TOML file listing the slots; unset: one soft
 *                      token, slot id 0
 *   KEYFRONT_DATA_DIR  directory of that default token's soft.db; default
 *                      $XDG_DATA_HOME/keyfront, else ~/.local/share/keyfront
 *   KEYFRONT_LOG       log filter (tracing env-filter syntax); default "warn"
 *   KEYFRONT_LOG_FILE  append the log to this file instead of stderr
 */
#ifndef KEYFRONT_H
#define KEYFRONT_H

#endif /* KEYFRONT_H */
