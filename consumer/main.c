/* alloc-consumer: placeholder main until the worker lands. */
#include "check.h"
int main(void) { return ALLOC_EXIT_RUNTIME; }
