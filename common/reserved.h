/* The reserved codes (DESIGN.md 3): project and data-source codes that name no
 * real project or data source. They are string literals, so SQL text takes
 * them by concatenation: "... AND project_code <> '" RESERVED_POOL "'". */
#ifndef ALLOC_RESERVED_H
#define ALLOC_RESERVED_H

/* Project: the pending amount of a data source before allocation (report_before). */
#define RESERVED_POOL "#POOL"
/* Project: the amount of a data source that could not be allocated. */
#define RESERVED_UNALLOCATED "#UNALLOCATED"
/* Project: the roll-up of all projects of a data source. */
#define RESERVED_TOTAL "#TOTAL"
/* Data source: the roll-up of all data sources (its project is RESERVED_TOTAL). */
#define RESERVED_ALL "#ALL"
/* What every reserved code starts with; an imported code may not. */
#define RESERVED_PREFIX "#"

#endif
