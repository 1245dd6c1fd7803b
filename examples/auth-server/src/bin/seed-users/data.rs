//! The lists demo users are drawn from. Plain ASCII, so that emails can be
//! built from names without transliteration.

/// Given names usually borne by women.
pub const FEMALE_NAMES: &[&str] = &[
    "Adelle", "Aurelia", "Bernadine", "Brittni", "Cairistiona", "Carlota", "Cecily", "Corrie",
    "Dania", "Delphine", "Dorelia", "Edeline", "Elfrida", "Ermengarde", "Fanya", "Florri",
    "Gwendolin", "Hedvig", "Ilsa", "Imojean", "Jacquetta", "Jehanna", "Karly", "Kissiah",
    "Lorrin", "Maddalena", "Marline", "Melisande", "Nananne", "Nerti", "Odette", "Orelia",
    "Philippa", "Priscella", "Rozalie", "Sibella", "Tabbitha", "Teodora", "Valene", "Wilhelmine",
    "Ynez", "Zorana",
];

/// Given names usually borne by men.
pub const MALE_NAMES: &[&str] = &[
    "Alasteir", "Ambrosio", "Bartholemy", "Benedikt", "Caspar", "Cornall", "Dacey", "Dmitri",
    "Egbert", "Emmerich", "Fergus", "Fitzgerald", "Gaspard", "Giraud", "Hamish", "Horatius",
    "Ignazio", "Isidoro", "Jarib", "Jerrome", "Kalvin", "Konstantin", "Lamond", "Lorenzo",
    "Malachi", "Mortimer", "Nikolai", "Norbie", "Osbourn", "Padraig", "Quintin", "Reinhard",
    "Rutger", "Sebastiano", "Tadeo", "Thaddus", "Ulises", "Valentin", "Wendel", "Xavier",
    "Yancy", "Zebedee",
];

/// Given names for people of other genders.
pub const OTHER_NAMES: &[&str] = &[
    "Alex", "Ariel", "Blair", "Jessie", "Jody", "Kendall", "Morgan", "Quinn", "Robin", "Sasha",
];

/// Genders other than female and male, as people give them.
pub const OTHER_GENDERS: &[&str] = &[
    "Non-binary", "Genderfluid", "Agender", "Genderqueer", "Bigender",
];

/// Family names.
pub const SURNAMES: &[&str] = &[
    "Abrahamoff", "Ackwood", "Alcorn", "Ashbee", "Balderson", "Bazire", "Beamson", "Birkin",
    "Blanchflower", "Bonnick", "Brumfield", "Carlone", "Casebourne", "Chaloner", "Clemenza",
    "Cockshott", "Dalgardno", "Dellenbroker", "Dinsmore", "Domenge", "Drinkale", "Eckly",
    "Edgecombe", "Ellerington", "Fairbanks", "Fawdrey", "Fitzackerley", "Frankcom", "Gabbitis",
    "Garrould", "Gianolini", "Goldsworthy", "Greatbach", "Hagland", "Hallibone", "Heinsh",
    "Hessing", "Hodjetts", "Huntington", "Iacopini", "Ivashinnikov", "Jacquemard", "Jerrold",
    "Kemish", "Kilfether", "Klimkowski", "Lamburn", "Leggatt", "Lindenberg", "Lovstrom",
    "MacCaughey", "Maplethorpe", "Matuszewski", "McGilvary", "Minchindon", "Morrissey",
    "Nanninini", "Nusche", "Oakenfield", "Ormerod", "Pavelka", "Pennicott", "Pickervance",
    "Prestedge", "Quenby", "Raggett", "Renzullo", "Robertazzi", "Rubinfajn", "Sabathier",
    "Scrowton", "Shakelady", "Skilbeck", "Stallybrass", "Swindlehurst", "Tarbath", "Thirlwell",
    "Toulamain", "Tuckey", "Upcott", "Vannoort", "Vickerman", "Wakenshaw", "Whitewood",
    "Wisedale", "Yakubovich", "Youngman", "Zanussii", "Zellner",
];

/// Countries (English short names).
pub const COUNTRIES: &[&str] = &[
    "Argentina", "Australia", "Brazil", "Canada", "Chile", "China", "Colombia", "Czech Republic",
    "Egypt", "Ethiopia", "Finland", "France", "Germany", "Ghana", "Greece", "India", "Indonesia",
    "Ireland", "Italy", "Japan", "Kenya", "Mexico", "Morocco", "Netherlands", "New Zealand",
    "Nigeria", "Norway", "Peru", "Philippines", "Poland", "Portugal", "Russia", "South Africa",
    "South Korea", "Spain", "Sweden", "Thailand", "Ukraine", "United Kingdom", "United States",
    "Vietnam",
];

/// Job titles.
pub const JOBS: &[&str] = &[
    "Account Executive", "Accountant I", "Administrative Assistant III", "Analog Circuit Design manager",
    "Assistant Media Planner", "Biostatistician II", "Budget/Accounting Analyst IV", "Chemical Engineer",
    "Civil Engineer", "Community Outreach Specialist", "Compensation Analyst", "Computer Systems Analyst I",
    "Data Coordinator", "Database Administrator II", "Dental Hygienist", "Design Engineer",
    "Developer III", "Editor", "Environmental Specialist", "Financial Advisor", "Food Chemist",
    "Geological Engineer", "Graphic Designer", "Help Desk Operator", "Human Resources Manager",
    "Internal Auditor", "Junior Executive", "Legal Assistant", "Marketing Manager",
    "Mechanical Systems Engineer", "Nurse Practicioner", "Nuclear Power Engineer", "Office Assistant IV",
    "Operator", "Paralegal", "Pharmacist", "Physical Therapy Assistant", "Programmer Analyst II",
    "Project Manager", "Quality Control Specialist", "Recruiting Manager", "Research Nurse",
    "Sales Associate", "Senior Developer", "Senior Financial Analyst", "Software Consultant",
    "Software Engineer IV", "Staff Scientist", "Statistician III", "Structural Engineer",
    "Systems Administrator I", "Teacher", "Technical Writer", "VP Product Management",
    "VP Quality Control", "Web Designer II", "Web Developer IV",
];

/// Email domains.
pub const DOMAINS: &[&str] = &[
    "smugmug.com", "ameblo.jp", "bandcamp.com", "bloglovin.com", "cafepress.com", "cornell.edu",
    "dailymotion.com", "deviantart.com", "elegantthemes.com", "europa.eu", "fastcompany.com",
    "geocities.jp", "github.io", "hatena.ne.jp", "hubpages.com", "jimdo.com", "livejournal.com",
    "mapquest.com", "netvibes.com", "nymag.com", "opensource.org", "photobucket.com",
    "reverbnation.com", "sciencedaily.com", "slideshare.net", "stumbleupon.com", "tinyurl.com",
    "typepad.com", "ucoz.ru", "usatoday.com", "vistaprint.com", "webnode.com", "wufoo.com",
    "xinhuanet.com", "zdnet.com",
];
