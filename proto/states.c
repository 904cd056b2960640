/*
 * The issue (work order) state machine of DESIGN.md as data, shared by the
 * handheld (which checks a move before queueing it) and the server (which
 * decides it with compare-and-set on state_rev). Rule numbers in comments
 * are DESIGN.md's.
 */
#include <string.h>

#include <gridsync/schema.h>

#define GW  GS_ROLE_GW
#define CS  GS_ROLE_CS
#define SC  GS_ROLE_SC
#define DC  GS_ROLE_DC
#define DH  GS_ROLE_DH
#define SYS GS_ROLE_SYS

static const struct gs_transition rules[] = {
	{ "", "draft", GW, GW, false, NULL },                   /* 1 */
	{ "draft", "reported", GW, GW, false, NULL },           /* 2 */
	{ "", "reported", SYS | DC, 0, false, NULL },           /* 3 */
	{ "draft", "self_resolved", GW, GW, false, "note" },    /* 4 */
	{ "reported", "self_resolved", GW, GW, false, "note" }, /* 4 */
	{ "reported", "cancelled", GW, GW, false, NULL },       /* 5 */
	{ "reported", "accepted", CS | SC, 0, false, NULL },    /* 6 */
	{ "reported", "invalid", CS | SC, 0, false, "note" },   /* 7 */
	{ "self_resolved", "closed", CS, 0, false, NULL },      /* 8 */
	{ "self_resolved", "accepted", CS, 0, false, NULL },    /* 9 */
	{ "accepted", "dispatched", CS | SC | DC, 0, false,
	  "assignee,due" },                                       /* 10 */
	{ "accepted", "in_progress", CS, 0, false, NULL },        /* 11 */
	{ "dispatched", "in_progress", DH | GW, GW, true, NULL }, /* 12 */
	{ "dispatched", "returned", DH, 0, false, "note" },       /* 13 */
	{ "in_progress", "returned", DH, 0, false, "note" },      /* 13 */
	{ "returned", "dispatched", SC | DC, 0, false,
	  "assignee,due" },                                         /* 14 */
	{ "returned", "invalid", SC | DC, 0, false, "note" },       /* 15 */
	{ "in_progress", "suspended", SC | DC, 0, false, "note" },  /* 16 */
	{ "suspended", "in_progress", SC | DC, 0, false, NULL },    /* 17 */
	{ "in_progress", "handled", DH | GW, GW, true, NULL },      /* 18 */
	{ "handled", "verified", GW, GW, false, NULL },             /* 19 */
	{ "handled", "dispatched", GW | SC | DC, GW, false, NULL }, /* 20 */
	{ "verified", "closed", CS | SC | DC, 0, false, NULL },     /* 21 */
	{ "closed", "evaluated", DC | SC | SYS, 0, false, NULL },   /* 22 */
};

static const struct {
	const char *name;
	int rank;
	bool terminal;
} states[] = {
	{ "draft", 0, false },          { "reported", 10, false },
	{ "self_resolved", 15, false }, { "accepted", 20, false },
	{ "returned", 25, false },      { "dispatched", 30, false },
	{ "in_progress", 40, false },   { "suspended", 45, false },
	{ "handled", 50, false },       { "verified", 60, false },
	{ "closed", 90, true },         { "evaluated", 95, true },
	{ "invalid", 95, true },        { "cancelled", 95, true },
};

#define N_STATES (sizeof(states) / sizeof(states[0]))

static const struct {
	const char *name;
	unsigned bit;
} roles[] = {
	{ "GW", GW }, { "CS", CS }, { "SC", SC },
	{ "DC", DC }, { "DH", DH }, { "SYS", SYS },
};

unsigned gs__role_parse(const char *name)
{
	for (size_t i = 0; name != NULL && i < sizeof(roles) / sizeof(*roles);
	     i++)
		if (strcmp(roles[i].name, name) == 0)
			return roles[i].bit;
	return 0;
}

const char *gs__role_name(unsigned role)
{
	for (size_t i = 0; i < sizeof(roles) / sizeof(*roles); i++)
		if (roles[i].bit == role)
			return roles[i].name;
	return "?";
}

const struct gs_transition *gs__transition_find(const char *from,
						const char *to)
{
	if (from == NULL || to == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (strcmp(rules[i].from, from) == 0 &&
		    strcmp(rules[i].to, to) == 0)
			return &rules[i];
	return NULL;
}

const struct gs_transition *gs__transitions(size_t *n_out)
{
	*n_out = sizeof(rules) / sizeof(rules[0]);
	return rules;
}

static int find_state(const char *state)
{
	for (size_t i = 0; state != NULL && i < N_STATES; i++)
		if (strcmp(states[i].name, state) == 0)
			return (int)i;
	return -1;
}

bool gs__state_valid(const char *state)
{
	return find_state(state) >= 0;
}

bool gs__state_terminal(const char *state)
{
	int i = find_state(state);

	return i >= 0 && states[i].terminal;
}

int gs__state_rank(const char *state)
{
	int i = find_state(state);

	return i >= 0 ? states[i].rank : -1;
}
