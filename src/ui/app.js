// posterior's dashboard (the pages come in the next commit).
"use strict";
document.getElementById("main").textContent = "posterior dashboard";
