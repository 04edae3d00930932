/* alloc-gen: placeholder main until the generator lands. */
#include "check.h"
int main(void) { return ALLOC_EXIT_RUNTIME; }
