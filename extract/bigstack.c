#include <pthread.h>
#include "_cgo_export.h"

static void *imgvec_big_stack_start(void *arg) {
	(void)arg;
	imgvecRunOnBigStack();
	return NULL;
}

// imgvec_run_on_big_stack runs imgvecRunOnBigStack on a new thread with a
// stack of stack_bytes and waits for it. It returns 0 or an errno value.
int imgvec_run_on_big_stack(size_t stack_bytes) {
	pthread_attr_t attr;
	pthread_t thread;
	int rc = pthread_attr_init(&attr);
	if (rc != 0) {
		return rc;
	}
	rc = pthread_attr_setstacksize(&attr, stack_bytes);
	if (rc == 0) {
		rc = pthread_create(&thread, &attr, imgvec_big_stack_start, NULL);
	}
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		return rc;
	}
	return pthread_join(thread, NULL);
}
