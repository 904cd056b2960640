/*
 * Internals of the handheld library that tests and benchmarks reach
 * (through gs_internal). Not installed, not API.
 */
#ifndef GRIDSYNC_CLIENT_INTERNAL_H
#define GRIDSYNC_CLIENT_INTERNAL_H

#include <sqlite3.h>

#include <gridsync/gridsync.h>

/* The device's connection, borrowed until gs_device_close. */
sqlite3 *gs__device_db(struct gs_device *dev);

/* Switch the connection to synchronous=NORMAL (1) or FULL (0). Benchmarks
 * only: a handheld always runs FULL. */
int gs__device_set_normal(struct gs_device *dev, int normal);

#endif
