"""Operations: what an operator watches (metrics) and what a load balancer asks
(liveness, readiness). Nothing here reads a sealed value."""
