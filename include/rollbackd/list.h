/*
 * list: one intrusive, circular, doubly linked list (the Linux / OVS
 * shape). An element embeds a struct list_node; a list is a sentinel node.
 * Every operation is O(1) except list_size; nothing allocates.
 *
 * Must never: own or free elements (the caller does, after list_remove).
 * Lock rules: none inside; the list is guarded by whatever guards its
 * owner (e.g. the engine's lock).
 *
 *	struct incident { ...; struct list_node link; };
 *	struct list_node all;
 *	list_init(&all);
 *	list_push_front(&all, &inc->link);
 *	struct incident *inc;
 *	LIST_FOR_EACH (inc, link, &all) ...
 */
#ifndef ROLLBACKD_LIST_H
#define ROLLBACKD_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};

/* The struct of type holding the member named member at ptr. */
#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* An empty list (or a node that is in no list: list_linked says false). */
static inline void list_init(struct list_node *l)
{
	l->prev = l->next = l;
}

static inline bool list_empty(const struct list_node *l)
{
	return l->next == l;
}

/* Whether a node initialised with list_init (or removed) is in a list. */
static inline bool list_linked(const struct list_node *n)
{
	return n->next != n && n->next != NULL;
}

static inline void list_insert_after(struct list_node *pos, struct list_node *n)
{
	n->prev = pos;
	n->next = pos->next;
	pos->next->prev = n;
	pos->next = n;
}

static inline void list_push_front(struct list_node *l, struct list_node *n)
{
	list_insert_after(l, n);
}

static inline void list_push_back(struct list_node *l, struct list_node *n)
{
	list_insert_after(l->prev, n);
}

/* Unlink n; afterwards n is an empty node (list_linked false). */
static inline void list_remove(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

/* The first / last node, or NULL when empty. */
static inline struct list_node *list_front(const struct list_node *l)
{
	return list_empty(l) ? NULL : l->next;
}

static inline struct list_node *list_back(const struct list_node *l)
{
	return list_empty(l) ? NULL : l->prev;
}

/* Remove and return the first node, or NULL. */
static inline struct list_node *list_pop_front(struct list_node *l)
{
	struct list_node *n = list_front(l);
	if (n)
		list_remove(n);
	return n;
}

static inline size_t list_size(const struct list_node *l)
{
	size_t n = 0;
	for (const struct list_node *p = l->next; p != l; p = p->next)
		n++;
	return n;
}

#define LIST_ENTRY(node, type, member) CONTAINER_OF(node, type, member)

/* Every element, front to back. obj is a pointer variable of the element
 * type; do not remove obj inside (use LIST_FOR_EACH_SAFE). */
#define LIST_FOR_EACH(obj, member, list)                                                           \
	for ((obj) = LIST_ENTRY((list)->next, __typeof__(*(obj)), member);                         \
	     &(obj)->member != (list);                                                             \
	     (obj) = LIST_ENTRY((obj)->member.next, __typeof__(*(obj)), member))

/* The same, back to front. */
#define LIST_FOR_EACH_REVERSE(obj, member, list)                                                   \
	for ((obj) = LIST_ENTRY((list)->prev, __typeof__(*(obj)), member);                         \
	     &(obj)->member != (list);                                                             \
	     (obj) = LIST_ENTRY((obj)->member.prev, __typeof__(*(obj)), member))

/* Every element, front to back; obj may be removed (and freed) inside. */
#define LIST_FOR_EACH_SAFE(obj, tmp, member, list)                                                 \
	for ((obj) = LIST_ENTRY((list)->next, __typeof__(*(obj)), member),                         \
	    (tmp) = (obj)->member.next;                                                            \
	     &(obj)->member != (list);                                                             \
	     (obj) = LIST_ENTRY((tmp), __typeof__(*(obj)), member), (tmp) = (tmp)->next)

#endif
