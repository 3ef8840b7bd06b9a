"""The expression graph: the IR (`ir`), the rule tables every op fills (`rules`), the NumPy
interpreter (`interpret`), reverse-mode autodiff that builds graphs (`autodiff`), the text form of
expressions (`text`), the safe string parser (`parser`) and user-defined ops (`custom_ops`)."""
