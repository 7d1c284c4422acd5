/*
 * pq_floor: the least a one-shot libpq client can do, the floor that
 * bench/oneshot.sh measures certctl-claim against: connect with the PG*
 * environment, run SELECT 1, disconnect. Exits 0, or 1 with libpq's message.
 */
#include <stdio.h>

#include <libpq-fe.h>

int main(void)
{
	PGconn *conn = PQconnectdb("");
	PGresult *result;
	int ok;

	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "pq_floor: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}
	result = PQexec(conn, "SELECT 1");
	ok = PQresultStatus(result) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "pq_floor: %s", PQerrorMessage(conn));
	PQclear(result);
	PQfinish(conn);
	return ok ? 0 : 1;
}
